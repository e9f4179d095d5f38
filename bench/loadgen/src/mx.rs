//! `loadgen mx`: delivery reports into Missive's inbound MX as a relay sends them: `clients`
//! connections, each sending report after report (`MAIL FROM:<>`, one return path, a delay
//! report of about 1.5 KB), `total` in all. The return paths are minted with the server's
//! secret key for emails that exist (`targets`: `tenant_id email_id recipient` a line), so
//! every report is authenticated, parsed and recorded as the MX would any other.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use missive_core::return_path::ReturnPaths;
use missive_core::{EmailId, TenantId};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One return path and the recipient its report names.
struct Target {
    return_path: String,
    recipient: String,
}

fn targets(paths: &ReturnPaths, file: &Path, domain: &str) -> anyhow::Result<Vec<Target>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let (Some(tenant), Some(email), Some(recipient)) =
            (fields.next(), fields.next(), fields.next())
        else {
            anyhow::bail!("a target line is `tenant_id email_id recipient`: {line}");
        };
        let tenant = TenantId::from_uuid(tenant.parse()?);
        let email = EmailId::from_uuid(email.parse()?);
        out.push(Target {
            return_path: format!("{}@{domain}", paths.local_part(tenant, email)),
            recipient: recipient.to_owned(),
        });
    }
    anyhow::ensure!(!out.is_empty(), "no targets in {}", file.display());
    Ok(out)
}

/// A delay report for `target`, in Postfix's shape.
fn report(target: &Target) -> String {
    format!(
        "From: MAILER-DAEMON@relay.bench (Mail Delivery System)\r\n\
         To: {rp}\r\n\
         Subject: Delayed Mail (still being retried)\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"R\"\r\n\
         \r\n\
         --R\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is the mail system at host relay.bench.\r\n\
         \r\n\
         ####################################################################\r\n\
         # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n\
         ####################################################################\r\n\
         \r\n\
         Your message could not be delivered for 4.0 hours. It will be retried.\r\n\
         \r\n\
         --R\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; relay.bench\r\n\
         Arrival-Date: Mon,  7 Dec 2026 12:00:00 +0000 (UTC)\r\n\
         \r\n\
         Final-Recipient: rfc822; {rcpt}\r\n\
         Original-Recipient: rfc822;{rcpt}\r\n\
         Action: delayed\r\n\
         Status: 4.4.1\r\n\
         Remote-MTA: dns; mx.sink.test\r\n\
         Diagnostic-Code: X-Postfix; connect to mx.sink.test[192.0.2.1]:25: Connection timed out\r\n\
         \r\n\
         --R\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         From: Bench <bench@bench.test>\r\n\
         To: {rcpt}\r\n\
         Subject: Benchmark message\r\n\
         \r\n\
         --R--\r\n.\r\n",
        rp = target.return_path,
        rcpt = target.recipient,
    )
}

async fn reply(reader: &mut BufReader<TcpStream>) -> anyhow::Result<u16> {
    let mut line = String::new();
    loop {
        line.clear();
        anyhow::ensure!(reader.read_line(&mut line).await? > 0, "the MX closed");
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line.get(..3).unwrap_or_default().parse()?);
        }
    }
}

async fn command(reader: &mut BufReader<TcpStream>, line: &str, want: u16) -> anyhow::Result<()> {
    reader.get_mut().write_all(line.as_bytes()).await?;
    let code = reply(reader).await?;
    anyhow::ensure!(code == want, "{} answered {code}", line.trim_end());
    Ok(())
}

/// One connection's share: reports until `total` are sent; its latencies and errors.
async fn client(
    addr: SocketAddr,
    targets: Arc<Vec<Target>>,
    next: Arc<AtomicU64>,
    total: usize,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let mut reader = BufReader::new(TcpStream::connect(addr).await?);
    anyhow::ensure!(reply(&mut reader).await? == 220, "no greeting");
    command(&mut reader, "EHLO relay.bench\r\n", 250).await?;
    let (mut latencies, mut errors) = (Vec::new(), 0);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
        if i >= total {
            command(&mut reader, "QUIT\r\n", 221).await?;
            return Ok((latencies, errors));
        }
        let target = &targets[i % targets.len()];
        let started = Instant::now();
        command(&mut reader, "MAIL FROM:<>\r\n", 250).await?;
        command(
            &mut reader,
            &format!("RCPT TO:<{}>\r\n", target.return_path),
            250,
        )
        .await?;
        command(&mut reader, "DATA\r\n", 354).await?;
        reader
            .get_mut()
            .write_all(report(target).as_bytes())
            .await?;
        if reply(&mut reader).await? == 250 {
            latencies.push(started.elapsed());
        } else {
            errors += 1;
        }
    }
}

/// Runs the load and prints `{reports, errors, seconds, per_second, p50_ms, p99_ms}`.
pub async fn run(
    addr: SocketAddr,
    secret_key: &str,
    targets_file: &Path,
    domain: &str,
    clients: usize,
    total: usize,
) -> anyhow::Result<()> {
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(secret_key.trim())?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the secret key is 32 bytes, base64"))?;
    let paths = ReturnPaths::new(&[key]).context("a secret key")?;
    let targets = Arc::new(targets(&paths, targets_file, domain)?);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(addr, targets.clone(), next.clone(), total)))
        .collect();
    let (mut latencies, mut errors) = (Vec::with_capacity(total), 0);
    for task in tasks {
        let (l, e) = task.await??;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "{}",
        serde_json::json!({
            "reports": total, "errors": errors, "seconds": elapsed,
            "per_second": latencies.len() as f64 / elapsed,
            "p50_ms": crate::percentile(&latencies, 0.50),
            "p99_ms": crate::percentile(&latencies, 0.99),
        })
    );
    Ok(())
}
