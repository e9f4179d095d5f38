//! Scheduled emails: cancelling one, and the natural-language and ISO forms of a schedule.

use super::*;

#[tokio::test]
async fn a_scheduled_email_can_be_canceled_once_and_only_it() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let mut body = plain(&json!(["a@x.test", "b@x.test"]));
    body["scheduled_at"] = json!(in_a_month());
    let id = app.send_email(&tenant.key, &body).await;
    let email = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&tenant.key))
        .await;
    let email = email.expect(200).clone();
    assert_eq!(email["last_event"], "scheduled");
    assert_eq!(email["scheduled_at"], body["scheduled_at"]);
    assert!(
        email["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["next_attempt_at"] == body["scheduled_at"])
    );

    let canceled = app
        .post(
            &format!("/v1/emails/{id}/cancel"),
            Auth::Key(&tenant.key),
            &json!({}),
        )
        .await;
    assert_eq!(canceled.expect(200)["id"], id.as_str());
    let email = app
        .get(&format!("/v1/emails/{id}"), Auth::Key(&tenant.key))
        .await;
    let email = email.expect(200).clone();
    assert_eq!(email["last_event"], "canceled");
    let events: Vec<&str> = email["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "email.scheduled",
            "email.scheduled",
            "email.canceled",
            "email.canceled"
        ]
    );
    app.post(
        &format!("/v1/emails/{id}/cancel"),
        Auth::Key(&tenant.key),
        &json!({}),
    )
    .await
    .expect_error(409, "conflict");

    let now = app
        .post(
            "/v1/emails",
            Auth::Key(&tenant.key),
            &plain(&json!("a@x.test")),
        )
        .await
        .expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/v1/emails/{now}/cancel"),
        Auth::Key(&tenant.key),
        &json!({}),
    )
    .await
    .expect_error(409, "conflict");
    app.post(
        &format!("/v1/emails/{}/cancel", uuid::Uuid::now_v7()),
        Auth::Key(&tenant.key),
        &json!({}),
    )
    .await
    .expect_error(404, "not_found");
}

#[tokio::test]
async fn schedules_in_resends_natural_language_and_iso_forms_are_accepted() {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let tenant = app.create_tenant("Acme").await;
    let now = OffsetDateTime::now_utc();
    for (raw, ahead) in [
        ("in 1 min", time::Duration::minutes(1)),
        ("in 2 hours", time::Duration::hours(2)),
        ("in 3 days", time::Duration::days(3)),
    ] {
        let mut body = plain(&json!("a@x.test"));
        body["scheduled_at"] = json!(raw);
        let id = app.send_email(&tenant.key, &body).await;
        let email = app
            .get(&format!("/v1/emails/{id}"), Auth::Key(&tenant.key))
            .await
            .expect(200)
            .clone();
        assert_eq!(email["last_event"], "scheduled", "{raw}");
        let at = OffsetDateTime::parse(email["scheduled_at"].as_str().unwrap(), &Rfc3339).unwrap();
        let off = (at - (now + ahead)).abs();
        assert!(off < time::Duration::seconds(30), "{raw}: {at}");
    }
    let mut body = plain(&json!("a@x.test"));
    body["scheduled_at"] = json!("2099-01-01T10:00:00.858+02:00");
    let refused = app.post("/v1/emails", Auth::Key(&tenant.key), &body).await;
    // More than a year ahead: parsed, then refused for its distance.
    assert!(
        refused
            .expect_error(422, "validation_error")
            .contains("one year")
    );
    body["scheduled_at"] = json!("next monday at 9");
    let refused = app.post("/v1/emails", Auth::Key(&tenant.key), &body).await;
    assert!(
        refused
            .expect_error(422, "validation_error")
            .contains("in N minutes")
    );
}
