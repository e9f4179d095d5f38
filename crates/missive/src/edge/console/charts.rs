//! Charts drawn on the server as inline SVG: no script, and nothing in them but numbers and
//! labels we escape, so they pass the console's Content-Security-Policy and cannot carry markup.

use std::fmt::Write as _;

use handlebars::html_escape;

/// A line over `values`, scaled to its own maximum: a tenant's day at a glance.
#[must_use]
pub fn sparkline(values: &[i64]) -> String {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = if values.len() > 1 {
        W / (values.len() - 1) as f64
    } else {
        W
    };
    let mut points = String::new();
    for (i, v) in values.iter().enumerate() {
        let x = i as f64 * step;
        let y = H - 1.0 - (*v as f64 / max) * (H - 2.0);
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" \
         aria-label=\"activity\"><polyline points=\"{}\" fill=\"none\" stroke=\"currentColor\" \
         stroke-width=\"1.5\"/></svg>",
        points.trim_end()
    )
}

/// One bar of a [`bars`] chart: its label and its stacked values, one per series.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub values: Vec<i64>,
}

/// Stacked bars, one per entry, with a legend for `series` (classes `s0`, `s1`, ... colour
/// them) and every `label_every`-th label under its bar.
#[must_use]
pub fn bars(bars: &[Bar], series: &[&str], label_every: usize) -> String {
    const W: f64 = 720.0;
    const H: f64 = 180.0;
    const BOTTOM: f64 = 20.0;
    const TOP: f64 = 16.0;
    let total = |b: &Bar| b.values.iter().sum::<i64>();
    let max = bars.iter().map(total).max().unwrap_or(0).max(1);
    let slot = W / bars.len().max(1) as f64;
    let width = (slot * 0.8).max(1.0);
    let scale = (H - BOTTOM - TOP) / max as f64;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"chart\">\
         <text class=\"axis\" x=\"0\" y=\"11\">max {max}</text>"
    );
    for (i, bar) in bars.iter().enumerate() {
        let x = i as f64 * slot + (slot - width) / 2.0;
        let mut y = H - BOTTOM;
        for (s, v) in bar.values.iter().enumerate() {
            if *v <= 0 {
                continue;
            }
            let h = *v as f64 * scale;
            y -= h;
            let _ = write!(
                svg,
                "<rect class=\"s{s}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" \
                 height=\"{h:.1}\"><title>{} {}: {v}</title></rect>",
                html_escape(&bar.label),
                html_escape(series.get(s).copied().unwrap_or("")),
            );
        }
        if label_every > 0 && i % label_every == 0 {
            let _ = write!(
                svg,
                "<text class=\"axis\" x=\"{x:.1}\" y=\"{}\">{}</text>",
                H - 5.0,
                html_escape(&bar.label)
            );
        }
    }
    svg.push_str("</svg><p class=\"legend\">");
    for (s, name) in series.iter().enumerate() {
        let _ = write!(
            svg,
            "<span class=\"key s{s}\"></span>{} ",
            html_escape(name)
        );
    }
    svg.push_str("</p>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_bars_scale_to_the_largest() {
        let chart = bars(
            &[
                Bar {
                    label: "<b>".to_owned(),
                    values: vec![2, 2],
                },
                Bar {
                    label: "x".to_owned(),
                    values: vec![1, 0],
                },
            ],
            &["delivered", "bounced"],
            1,
        );
        assert!(chart.contains("&lt;b&gt;"));
        assert!(!chart.contains("<b>"));
        assert!(chart.contains("max 4"));
        assert_eq!(chart.matches("<rect").count(), 3);
    }

    #[test]
    fn a_sparkline_has_a_point_per_value() {
        let line = sparkline(&[0, 5, 10]);
        assert!(line.contains("points=\"0.0,23.0 60.0,12.0 120.0,1.0\""));
    }
}
