//! `hf://` sources against the Hub stand-in (tests/src/hf_hub), which is first checked against
//! the real `huggingface_hub` client: what `snapshot_download` gets from it is what it serves,
//! and the client's own error classes come out of its refusals. Then model-sync, as a Job and
//! as a storage initializer, must produce the same bytes everywhere, send the token to the Hub
//! and never to the CDN, resume broken downloads, catch tampered content, and refuse gated,
//! unknown and mistyped sources before the registry is touched.
use std::collections::BTreeMap;
use std::time::Duration;

use model_sync::config::{HubSettings, Secret};
use model_sync::hf::{HubOptions, HubSource};
use model_sync::local::LocalDestination;
use model_sync::run::engine::{AnyDestination, AnySource, transfer};
use model_sync::transfer::Reason;
use model_sync::transfer::retry::{ResumeOptions, RetryPolicy};
use mro_tests::hf_hub::client::snapshot_download;
use mro_tests::hf_hub::{Access, HubFile, HubStandIn};
use mro_tests::model_sync::{Model, SyncJob, pseudo_random, pull_image};

use super::e2e::{World, artifact, check_created};

const READER: &str = "hf_reader_token_0123456789";
const OUTSIDER: &str = "hf_outsider_token_9876543210";

/// Files of one commit: git files (one in a directory with a space), two LFS files.
fn files(seed: u64) -> Vec<HubFile> {
    vec![
        HubFile::git(
            "config.json",
            format!("{{\"seed\": {seed}, \"layers\": 2}}\n"),
        ),
        HubFile::git("README.md", format!("# tiny model {seed}\n")),
        HubFile::git(
            "sub dir/tokenizer.json",
            format!("{{\"vocab\": [{seed}]}}\n"),
        ),
        HubFile::lfs("model.safetensors", pseudo_random(seed, 3_000_000)),
        HubFile::lfs("weights/part-0.bin", pseudo_random(seed + 7, 400_000)),
    ]
}

/// `org/tiny` (v1 tagged, then main moved on, refs/pr/1 at v1), `org/gated` readable with
/// [`READER`], `org/private`; two entries a tree page so both clients page.
fn hub() -> anyhow::Result<(HubStandIn, String)> {
    mro_tests::init();
    let hub = HubStandIn::start()?;
    let v1 = hub.commit("org/tiny", "main", &files(1));
    hub.tag("org/tiny", "v1", &v1)?;
    hub.tag("org/tiny", "refs/pr/1", &v1)?;
    hub.commit("org/tiny", "main", &files(2));
    hub.commit("org/gated", "main", &files(3));
    hub.set_access("org/gated", Access::Gated, &[READER])?;
    hub.add_token(OUTSIDER);
    hub.commit("org/private", "main", &files(4));
    hub.set_access("org/private", Access::Private, &[READER])?;
    hub.set_page_size(2);
    Ok((hub, v1))
}

/// A directory's files, without the client's `.cache/` bookkeeping.
fn read_snapshot(dir: &std::path::Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = Model::read_dir(dir)?.files;
    files.retain(|p, _| !p.starts_with(".cache/"));
    Ok(files)
}

fn assert_no_token_at_the_cdn(hub: &HubStandIn) {
    let reqs = hub.requests();
    let cdn: Vec<_> = reqs.iter().filter(|r| r.host == "cdn").collect();
    assert!(!cdn.is_empty(), "no LFS download went through the CDN");
    assert!(
        cdn.iter().all(|r| r.authorization.is_none()),
        "a token reached the CDN: {cdn:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn huggingface_hub_downloads_what_the_stand_in_serves() -> anyhow::Result<()> {
    let (hub, v1) = hub()?;
    let ep = hub.endpoint();
    for (repo, rev, token, served_at) in [
        ("org/tiny", None, None, "main"),
        ("org/tiny", Some("v1"), None, "v1"),
        ("org/tiny", Some(v1.as_str()), None, "v1"),
        ("org/tiny", Some("refs/pr/1"), None, "v1"),
        ("org/gated", None, Some(READER), "main"),
        ("org/private", Some("main"), Some(READER), "main"),
    ] {
        let dest = tempfile::tempdir()?;
        let snap = snapshot_download(&ep, repo, rev, token, dest.path()).await?;
        assert_eq!(snap.error, None, "{repo} {rev:?}: {}", snap.output);
        let want = hub.files_at(repo, served_at);
        assert_eq!(want.len(), 5);
        assert_eq!(read_snapshot(dest.path())?, want, "{repo} {rev:?}");
    }
    assert_no_token_at_the_cdn(&hub);
    // The client sent the token to the Hub for the gated files it fetched there.
    assert!(hub.requests().iter().any(|r| {
        r.host == "hub"
            && r.path.starts_with("/org/gated/resolve/")
            && r.authorization.as_deref() == Some(&format!("Bearer {READER}"))
    }));
    // Tree pages were followed (two entries a page).
    assert!(hub.requests().iter().any(|r| r.path.contains("cursor=")));

    // The refusals are the ones the real client recognises.
    for (repo, rev, token, class) in [
        ("org/gated", None, None, "GatedRepoError"),
        ("org/gated", None, Some(OUTSIDER), "GatedRepoError"),
        ("org/missing", None, None, "RepositoryNotFoundError"),
        ("org/private", None, None, "RepositoryNotFoundError"),
        (
            "org/tiny",
            Some("no-such-branch"),
            None,
            "RevisionNotFoundError",
        ),
    ] {
        let dest = tempfile::tempdir()?;
        let snap = snapshot_download(&ep, repo, rev, token, dest.path()).await?;
        assert_eq!(
            snap.error.as_deref(),
            Some(class),
            "{repo} {rev:?} {token:?}: {}",
            snap.output
        );
    }
    Ok(())
}

/// A create_model job reading `hf://<repo>[:<rev>]` from the stand-in.
fn hf_job(w: &World, hub: &HubStandIn, uri: &str, token: Option<&str>) -> anyhow::Result<SyncJob> {
    let mut job = w.job()?;
    job.uri_source(uri).env("HF_ENDPOINT", hub.endpoint());
    if let Some(t) = token {
        job.env("HF_TOKEN", t);
    }
    Ok(job)
}

#[tokio::test(flavor = "multi_thread")]
async fn hf_to_oci_s3_and_pvc_give_what_huggingface_hub_gets() -> anyhow::Result<()> {
    let (hub, _) = hub()?;
    let w = World::start().await?;
    w.s3.create_bucket("published").await?;
    // The reference: what the real client downloads of the gated repository.
    let reference = tempfile::tempdir()?;
    let snap = snapshot_download(
        &hub.endpoint(),
        "org/gated",
        None,
        Some(READER),
        reference.path(),
    )
    .await?;
    assert_eq!(snap.error, None, "{}", snap.output);
    let want = Model {
        files: read_snapshot(reference.path())?,
    };
    assert_eq!(want.files, hub.files_at("org/gated", "main"));

    for to in ["oci", "s3", "pvc"] {
        hub.clear_requests();
        let name = format!("hf-to-{to}");
        let mut job = hf_job(&w, &hub, "hf://org/gated", Some(READER))?;
        let dest = job.dir().join("dest-pvc");
        match to {
            "oci" => w.to_oci(&mut job, &format!("hf/{name}"), "v1")?,
            "s3" => {
                job.s3_destination(&w.s3, "published", &name);
            }
            _ => {
                job.pvc_destination(&dest);
            }
        }
        job.create_model(&name, "1")?;
        let out = job.run().await?;
        let doc = check_created(&w.mr, &out, &want, &name, "1");
        let got = match to {
            "oci" => {
                let uri = doc["uri"].as_str().unwrap_or_default();
                pull_image(&w.oci, uri.trim_start_matches("oci://"))
                    .await?
                    .models
            }
            "s3" => Model::read_s3(&w.s3, "published", &name).await?,
            _ => Model::read_dir(&dest)?,
        };
        assert_eq!(got, want, "hf -> {to}");
        assert_no_token_at_the_cdn(&hub);
        let resolves: Vec<_> = hub
            .requests()
            .into_iter()
            .filter(|r| r.host == "hub" && r.path.contains("/resolve/"))
            .collect();
        assert!(
            resolves
                .iter()
                .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {READER}"))),
            "{resolves:?}"
        );
        // Pinned: every download names the commit, not the branch.
        let commit = hub.resolve("org/gated", "main").unwrap_or_default();
        assert!(
            resolves
                .iter()
                .all(|r| r.path.starts_with(&format!("/org/gated/resolve/{commit}/"))),
            "{resolves:?}"
        );
        assert!(!out.all_output().contains(READER), "{}", out.all_output());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hf_refusals_come_before_the_registry_is_touched() -> anyhow::Result<()> {
    let (hub, _) = hub()?;
    let w = World::start().await?;
    let (_, _, aid) = w.seed_artifact("hf-refused").await?;
    let before = artifact(&w.mr, &aid);
    for (uri, token, says) in [
        ("hf://org/gated", None, "the repository is gated"),
        ("hf://org/gated", Some(OUTSIDER), "the repository is gated"),
        ("hf://org/missing", None, "repository not found"),
        ("hf://org/private", Some(OUTSIDER), "repository not found"),
        ("hf://org/tiny:no-such-branch", None, "revision not found"),
        (
            "hf://org/tiny",
            Some("hf_unknown_token"),
            "HF_TOKEN was refused",
        ),
    ] {
        w.mr.clear_requests();
        let mut job = hf_job(&w, &hub, uri, token)?;
        job.env("MODEL_SYNC_MODEL_UPLOAD_INTENT", "update_artifact")
            .env("MODEL_SYNC_MODEL_ARTIFACT_ID", aid.clone())
            .pvc_destination(&std::env::temp_dir().join("mro-hf-never-written"));
        let out = job.run().await?;
        out.expect_exit(1);
        assert_eq!(out.reason(), "SourceUnavailable", "{}", out.all_output());
        let message = out.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(says), "{uri}: {message}");
        assert!(
            w.mr.requests().is_empty(),
            "{uri}: the registry was contacted: {:?}",
            w.mr.requests()
        );
        assert_eq!(artifact(&w.mr, &aid), before, "{uri}");
    }
    // A bad HF_ENDPOINT is a configuration error (exit 2), found before anything is contacted.
    let mut job = hf_job(&w, &hub, "hf://org/tiny", None)?;
    job.env("HF_ENDPOINT", "huggingface.co")
        .env("MODEL_SYNC_MODEL_UPLOAD_INTENT", "update_artifact")
        .env("MODEL_SYNC_MODEL_ARTIFACT_ID", aid.clone())
        .pvc_destination(&std::env::temp_dir().join("mro-hf-never-written"));
    hub.clear_requests();
    let out = job.run().await?;
    out.expect_exit(2);
    assert!(
        out.all_output()
            .contains("HF_ENDPOINT has an invalid value"),
        "{}",
        out.all_output()
    );
    assert!(hub.requests().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hf_storage_initializer_downloads_a_revision() -> anyhow::Result<()> {
    let (hub, v1) = hub()?;
    for (uri, token, rev) in [
        ("hf://org/tiny:v1", None, "v1"),
        ("hf://org/gated", Some(READER), "main"),
    ] {
        let mut job = SyncJob::new()?;
        let dest = job.dir().join("mnt/models");
        job.remove_env("MODEL_SYNC_STORAGE_PATH")
            .env("HF_ENDPOINT", hub.endpoint())
            .arg(uri)
            .arg(dest.display().to_string());
        if let Some(t) = token {
            job.env("HF_TOKEN", t);
        }
        let out = job.run().await?;
        out.expect_exit(0);
        let repo = uri
            .trim_start_matches("hf://")
            .split(':')
            .next()
            .unwrap_or_default();
        assert_eq!(
            Model::read_dir(&dest)?.files,
            hub.files_at(repo, rev),
            "{uri}"
        );
    }
    assert_eq!(hub.resolve("org/tiny", "v1").as_deref(), Some(v1.as_str()));

    let mut job = SyncJob::new()?;
    let dest = job.dir().join("mnt/models");
    job.remove_env("MODEL_SYNC_STORAGE_PATH")
        .env("HF_ENDPOINT", hub.endpoint())
        .arg("hf://org/gated")
        .arg(dest.display().to_string());
    let out = job.run().await?;
    out.expect_exit(1);
    assert!(
        out.all_output().contains("the repository is gated"),
        "{}",
        out.all_output()
    );
    assert!(!dest.exists() || Model::read_dir(&dest)?.files.is_empty());
    Ok(())
}

fn settings(hub: &HubStandIn, token: Option<&str>) -> anyhow::Result<HubSettings> {
    Ok(HubSettings {
        endpoint: url::Url::parse(&hub.endpoint())?,
        token: token.map(|t| Secret::new(t.to_owned())),
    })
}

fn fast() -> HubOptions {
    HubOptions {
        resume: ResumeOptions {
            policy: RetryPolicy {
                attempts: 4,
                initial: Duration::from_millis(10),
                max: Duration::from_millis(50),
            },
            idle_timeout: Duration::from_secs(10),
            max_resumes: 20,
        },
        ca_pem: None,
    }
}

async fn download(source: HubSource) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let dir = tempfile::tempdir()?;
    let dest = dir.path().join("model");
    transfer(
        &AnySource::Hub(source),
        &AnyDestination::Local(LocalDestination::new(dest.clone())),
    )
    .await?;
    Ok(Model::read_dir(&dest)?.files)
}

#[tokio::test(flavor = "multi_thread")]
async fn hf_downloads_resume_follow_renames_and_catch_tampering() -> anyhow::Result<()> {
    let (hub, _) = hub()?;
    let want = hub.files_at("org/gated", "main");
    // Broken connections: an LFS file at the CDN (twice) and a git file at the Hub.
    let lfs = &want["model.safetensors"];
    let git = &want["config.json"];
    hub.interrupt_downloads(lfs, 1_000_000, 2);
    hub.interrupt_downloads(git, 5, 1);
    // A renamed repository: the Hub redirects on its own origin, so the token stays.
    hub.rename("old-org/gated", "org/gated");
    let source =
        HubSource::prepare("old-org/gated", None, settings(&hub, Some(READER))?, fast()).await?;
    assert_eq!(
        source.commit(),
        hub.resolve("org/gated", "main").unwrap_or_default()
    );
    assert_eq!(download(source).await?, want);
    let ranges: Vec<_> = hub
        .requests()
        .into_iter()
        .filter_map(|r| r.range.map(|range| (r.host, range)))
        .collect();
    assert!(
        ranges.contains(&("cdn", "bytes=1000000-".into())),
        "{ranges:?}"
    );
    assert!(
        ranges.contains(&("cdn", "bytes=2000000-".into())),
        "{ranges:?}"
    );
    assert!(ranges.contains(&("hub", "bytes=5-".into())), "{ranges:?}");
    assert_no_token_at_the_cdn(&hub);

    // Tampered content: the LFS sha256 and the git blob id are both checked.
    for path in ["model.safetensors", "config.json"] {
        hub.clear_faults();
        hub.tamper_downloads(&want[path], 100);
        let source =
            HubSource::prepare("org/gated", None, settings(&hub, Some(READER))?, fast()).await?;
        let err = download(source).await.unwrap_err();
        let err = err.downcast::<model_sync::transfer::TransferError>()?;
        assert_eq!(err.reason, Reason::IntegrityError, "{path}: {err}");
        assert!(err.message.contains(path), "{path}: {err}");
    }

    // A repository whose probed (first) file is in LFS: the Hub's answer is the redirect itself.
    hub.clear_faults();
    let only = vec![HubFile::lfs("a.bin", pseudo_random(9, 70_000))];
    hub.commit("org/lfs-only", "main", &only);
    let source = HubSource::prepare("org/lfs-only", None, settings(&hub, None)?, fast()).await?;
    assert_eq!(
        download(source).await?,
        hub.files_at("org/lfs-only", "main")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn model_registry_uri_to_a_hugging_face_repository() -> anyhow::Result<()> {
    // The KServe path: a ClusterStorageContainer hands model-sync a model-registry:// URI whose
    // artifact is an hf:// repository.
    let (hub, _) = hub()?;
    let w = World::start().await?;
    let c = super::e2e::registry_client(&w.mr)?;
    let m = c
        .create_registered_model(&registry_client::RegisteredModelCreate {
            name: "tiny".into(),
            ..Default::default()
        })
        .await?;
    let v = c
        .create_model_version(&registry_client::ModelVersionCreate {
            name: "v1".into(),
            registered_model_id: m.id.clone(),
            ..Default::default()
        })
        .await?;
    c.create_model_version_artifact(
        &v.id,
        &registry_client::ModelArtifactCreate {
            name: Some("tiny-v1".into()),
            fields: registry_client::ModelArtifactFields {
                uri: Some("hf://org/tiny:v1".into()),
                state: Some(registry_client::ArtifactState::Live),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await?;
    let mut job = SyncJob::new()?;
    let dest = job.dir().join("mnt/models");
    job.remove_env("MODEL_SYNC_STORAGE_PATH")
        .env("MODEL_REGISTRY_BASE_URL", w.mr.addr().to_string())
        .env("MODEL_REGISTRY_SCHEME", "http")
        .env("HF_ENDPOINT", hub.endpoint())
        .arg("model-registry://tiny/v1")
        .arg(dest.display().to_string());
    let out = job.run().await?;
    out.expect_exit(0);
    assert_eq!(
        out.json()["uri"],
        "hf://org/tiny:v1",
        "{}",
        out.all_output()
    );
    assert_eq!(
        Model::read_dir(&dest)?.files,
        hub.files_at("org/tiny", "v1")
    );
    Ok(())
}
