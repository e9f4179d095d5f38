//! Projects in the console: the operator sees a tenant's projects with this month's figures; a
//! key with `projects:manage` sees the tenant's totals and switches the session between projects,
//! while any other key stays in its own.

use missive_tests::{Auth, TestApp};
use serde_json::json;

use super::Browser;

#[tokio::test]
async fn a_projects_manage_session_switches_projects_and_the_operator_sees_them_all() {
    let app = TestApp::spawn().await;
    app.expect_unsent_mail();
    let acme = app.create_tenant("Acme").await;
    let (_, manager) = app
        .create_key(&acme.id, "manager", &["full_access", "projects:manage"])
        .await;
    let created = app
        .post(
            "/v1/projects",
            Auth::Key(&manager),
            &json!({ "name": "billing" }),
        )
        .await;
    let billing = created.expect(201)["id"].as_str().unwrap().to_owned();
    let issued = app
        .post(
            &format!("/v1/projects/{billing}/api-keys"),
            Auth::Key(&manager),
            &json!({ "name": "billing-send", "scopes": ["send"] }),
        )
        .await;
    let token = issued.expect(201)["token"].as_str().unwrap().to_owned();
    let billed = app
        .send_email(
            &token,
            &json!({ "from": "a@acme.test", "to": "x@x.test", "subject": "Billed", "text": "t" }),
        )
        .await;

    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&manager).await.status, 303);
    let page = browser.get("/console/projects").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("billing") && page.body.contains("default"));
    assert!(
        page.body.contains("id=\"tenant-emails\">1<"),
        "{}",
        page.body
    );
    // In the default project, billing's email is not there; after the switch it is.
    let emails = browser.get("/console/emails").await;
    assert!(!emails.body.contains(&billed), "{}", emails.body);
    let csrf = page.csrf();
    let switched = browser
        .post(
            "/console/projects/switch",
            &[("_csrf", &csrf), ("project_id", &billing)],
        )
        .await;
    assert_eq!(switched.status, 303, "{}", switched.body);
    let emails = browser.get("/console/emails").await;
    assert!(emails.body.contains(&billed), "{}", emails.body);
    assert!(
        emails
            .body
            .contains(&format!("id=\"current-project\">{billing}<"))
    );
    // Another tenant's project, or nonsense, is not a place to switch to.
    let other = app.create_tenant("Other").await;
    for target in [other.id.as_str(), "nonsense"] {
        let refused = browser
            .post(
                "/console/projects/switch",
                &[("_csrf", &csrf), ("project_id", target)],
            )
            .await;
        assert_eq!(refused.status, 404, "{}", refused.body);
    }

    // A key without the scope has no projects page and no switch.
    let mut plain = Browser::new(&app);
    assert_eq!(plain.sign_in(&acme.key).await.status, 303);
    assert_eq!(plain.get("/console/projects").await.status, 403);
    let page = plain.get("/console/emails").await;
    let refused = plain
        .post(
            "/console/projects/switch",
            &[("_csrf", &page.csrf()), ("project_id", &billing)],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // The operator's page of the tenant lists both projects with their figures.
    let mut operator = Browser::new(&app);
    assert_eq!(operator.sign_in(missive_tests::ADMIN_KEY).await.status, 303);
    let page = operator
        .get(&format!("/console/operator/tenants/{}", acme.id))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let table = &page.body[page.body.find("id=\"projects\"").unwrap()..];
    assert!(
        table.contains("billing") && table.contains(&billing),
        "{table}"
    );
}
