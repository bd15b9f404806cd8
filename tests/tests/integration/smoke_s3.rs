//! Smoke tests for the in-process S3 server: the operations model-sync relies on, and SigV4 enforcement.
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use mro_tests::s3::S3Server;
use sha2::{Digest as _, Sha256};

/// Deterministic, non-repeating-looking bytes so a misplaced part changes the digest.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed as u64) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_put_get_and_list_with_prefix() -> anyhow::Result<()> {
    mro_tests::init();
    let s3 = S3Server::start().await?;
    assert!(
        s3.endpoint().starts_with("http://127.0.0.1:"),
        "{}",
        s3.endpoint()
    );
    s3.create_bucket("models").await?;
    let client = s3.client();

    let files = [
        ("llm/v1/config.json", b"{\"a\":1}".to_vec()),
        ("llm/v1/weights.bin", pattern(4096, 1)),
        ("llm/v2/weights.bin", pattern(100, 2)),
        ("other/readme.md", b"hello".to_vec()),
    ];
    for (key, data) in &files {
        client
            .put_object()
            .bucket("models")
            .key(*key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await?;
    }

    let got = client
        .get_object()
        .bucket("models")
        .key("llm/v1/weights.bin")
        .send()
        .await?;
    assert_eq!(got.content_length(), Some(4096));
    let body = got.body.collect().await?.into_bytes();
    assert_eq!(body.as_ref(), files[1].1.as_slice());
    // The object really is a file under the server's root.
    assert_eq!(
        std::fs::read(s3.root().join("models/llm/v1/weights.bin"))?,
        files[1].1
    );

    let listed = client
        .list_objects_v2()
        .bucket("models")
        .prefix("llm/v1/")
        .send()
        .await?;
    let mut keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["llm/v1/config.json", "llm/v1/weights.bin"]);

    let all = client
        .list_objects_v2()
        .bucket("models")
        .prefix("llm/")
        .send()
        .await?;
    assert_eq!(all.key_count(), Some(3));

    let missing = client
        .get_object()
        .bucket("models")
        .key("llm/v3/nope")
        .send()
        .await;
    assert!(missing.is_err(), "missing key must be an error");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_multipart_upload_round_trips() -> anyhow::Result<()> {
    mro_tests::init();
    let s3 = S3Server::start().await?;
    s3.create_bucket("big").await?;
    let client = s3.client();
    const PART: usize = 5 * 1024 * 1024;
    let parts = [pattern(PART, 7), pattern(PART, 8), pattern(1234, 9)];
    let whole: Vec<u8> = parts.concat();

    let upload = client
        .create_multipart_upload()
        .bucket("big")
        .key("model.safetensors")
        .send()
        .await?;
    let upload_id = upload.upload_id().expect("upload id");
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = client
            .upload_part()
            .bucket("big")
            .key("model.safetensors")
            .upload_id(upload_id)
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .send()
            .await?;
        completed.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket("big")
        .key("model.safetensors")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await?;

    let head = client
        .head_object()
        .bucket("big")
        .key("model.safetensors")
        .send()
        .await?;
    assert_eq!(head.content_length(), Some(whole.len() as i64));
    let body = s3.get_object("big", "model.safetensors").await?;
    assert_eq!(
        hex::encode(Sha256::digest(&body)),
        hex::encode(Sha256::digest(&whole))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_rejects_wrong_secret_and_unknown_key() -> anyhow::Result<()> {
    mro_tests::init();
    let s3 = S3Server::start().await?;
    s3.create_bucket("private").await?;
    s3.put_object("private", "secret.txt", &b"top"[..]).await?;

    let wrong_secret = s3.client_with_credentials(s3.access_key(), "definitely-not-the-secret");
    let err = wrong_secret
        .get_object()
        .bucket("private")
        .key("secret.txt")
        .send()
        .await
        .expect_err("a wrong secret must be rejected");
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(403), "wrong secret: {err:?}");

    let unknown_key = s3.client_with_credentials("AKIAUNKNOWN", s3.secret_key());
    let err = unknown_key
        .list_buckets()
        .send()
        .await
        .expect_err("an unknown access key must be rejected");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "unknown key: {err:?}"
    );

    // Anonymous (unsigned) requests are refused too.
    let anon = reqwest::get(format!("{}/private/secret.txt", s3.endpoint())).await?;
    assert_eq!(anon.status().as_u16(), 403, "anonymous get must be refused");

    // The right credentials still work, so the failures above are about the credentials.
    assert_eq!(
        s3.get_object("private", "secret.txt").await?.as_ref(),
        b"top"
    );
    Ok(())
}
