//! Smoke tests for the static HTTP file server used for `uri` model sources.
use mro_tests::http_files::{HttpAuth, HttpFileServer};

#[tokio::test(flavor = "multi_thread")]
async fn http_serves_files_and_404s() -> anyhow::Result<()> {
    mro_tests::init();
    let server = HttpFileServer::start().await?;
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    server.write_file("models/m1/model.bin", &data)?;

    let url = server.url_for("/models/m1/model.bin");
    assert_eq!(url, format!("{}/models/m1/model.bin", server.base_url()));
    let resp = reqwest::get(&url).await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.content_length(), Some(10_000));
    assert_eq!(resp.bytes().await?.as_ref(), data.as_slice());

    // A range request returns exactly the asked-for slice (what a resuming downloader relies on).
    let partial = reqwest::Client::new()
        .get(&url)
        .header("Range", "bytes=100-199")
        .send()
        .await?;
    assert_eq!(partial.status().as_u16(), 206);
    assert_eq!(partial.bytes().await?.as_ref(), &data[100..200]);

    // HEAD reports the size without a body (how downloaders size a file before fetching it).
    let head = reqwest::Client::new().head(&url).send().await?;
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(head.headers()["content-length"], "10000");
    assert!(head.bytes().await?.is_empty());

    let missing = reqwest::get(server.url_for("models/m1/absent.bin")).await?;
    assert_eq!(missing.status().as_u16(), 404);

    let escape = reqwest::get(format!(
        "{}/models/%2e%2e/%2e%2e/etc/passwd",
        server.base_url()
    ))
    .await?;
    assert!(
        escape.status().is_client_error(),
        "path traversal must fail: {}",
        escape.status()
    );

    let paths: Vec<_> = server.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.contains(&"/models/m1/model.bin".to_owned()),
        "{paths:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn http_requires_configured_credentials() -> anyhow::Result<()> {
    mro_tests::init();
    for auth in [
        HttpAuth::Bearer("s3cr3t-token".to_owned()),
        HttpAuth::Basic {
            username: "alice".to_owned(),
            password: "wonderland".to_owned(),
        },
    ] {
        let server = HttpFileServer::start_with_auth(auth.clone()).await?;
        server.write_file("private.txt", "classified")?;
        let url = server.url_for("private.txt");
        let http = reqwest::Client::new();

        let anonymous = http.get(&url).send().await?;
        assert_eq!(anonymous.status().as_u16(), 401, "{auth:?}");
        assert!(anonymous.headers().contains_key("www-authenticate"));

        let wrong = http
            .get(&url)
            .header("Authorization", "Bearer nope")
            .send()
            .await?;
        assert_eq!(wrong.status().as_u16(), 401, "{auth:?}");

        let ok = http
            .get(&url)
            .header(
                "Authorization",
                server.authorization_header().expect("auth configured"),
            )
            .send()
            .await?;
        assert_eq!(ok.status().as_u16(), 200, "{auth:?}");
        assert_eq!(ok.text().await?, "classified");

        let log = server.requests();
        assert_eq!(log.iter().filter(|r| r.authorized).count(), 1, "{log:?}");
    }
    Ok(())
}
