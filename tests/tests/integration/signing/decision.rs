//! The signing decision table (`--sign` × SIGSTORE_* variables), row by row, through the binary:
//! whether `model.sig` appears, the warning for a partial configuration, and the error when
//! signing is forced without what keyless signing needs.
use mro_tests::model_registry::{ModelRegistryStandIn, StandInOptions};
use mro_tests::sigstore::Sigstore;

use super::keyless::keyless_job;

const ALL: [&str; 3] = [
    "SIGSTORE_TUF_URL",
    "SIGSTORE_FULCIO_URL",
    "SIGSTORE_REKOR_URL",
];

/// One row: name, `--sign`, the variables kept, exit code, signed?, warning?
type Row = (
    &'static str,
    Option<&'static str>,
    &'static [&'static str],
    i32,
    bool,
    bool,
);

#[tokio::test(flavor = "multi_thread")]
async fn decision_table_rows() -> anyhow::Result<()> {
    mro_tests::init();
    let sig = Sigstore::start()?;
    let mr = ModelRegistryStandIn::start(StandInOptions::default()).await?;
    let tuf = sig.tuf().await?;
    let token = sig
        .issuer
        .token("system:serviceaccount:models:sync", "sigstore", 600)?;
    let rows: [Row; 7] = [
        ("unset, all three", None, &ALL, 0, true, false),
        ("unset, none", None, &[], 0, false, false),
        ("unset, only TUF", None, &ALL[..1], 0, false, true),
        ("unset, Fulcio+Rekor", None, &ALL[1..], 0, false, true),
        ("false, all three", Some("false"), &ALL, 0, false, false),
        (
            "true, Fulcio+Rekor",
            Some("true"),
            &ALL[1..],
            0,
            true,
            false,
        ),
        ("true, none", Some("true"), &[], 2, false, false),
    ];
    for (i, (name, flag, keep, code, signed, warned)) in rows.into_iter().enumerate() {
        let mut job = keyless_job(&mr, &sig, &tuf.url(), &token)?;
        for v in ALL.iter().filter(|v| !keep.contains(v)) {
            job.remove_env(v);
        }
        if let Some(f) = flag {
            job.env("MODEL_SYNC_SIGN", f);
        }
        job.create_model(&format!("decision-{i}"), "v1")?;
        let out = job.run().await?;
        assert_eq!(out.exit_code, Some(code), "{name}\n{}", out.all_output());
        let has_sig = job.dir().join("out/bert/model.sig").is_file();
        assert_eq!(
            has_sig,
            signed,
            "{name}: model.sig present = {has_sig}\n{}",
            out.all_output()
        );
        // Keyless without a TUF repository signs unchecked, and says so.
        if signed {
            let unchecked = out
                .all_output()
                .contains("not checked against a trusted root");
            assert_eq!(
                unchecked,
                !keep.contains(&"SIGSTORE_TUF_URL"),
                "{name}: unchecked warning = {unchecked}\n{}",
                out.all_output()
            );
        }
        let warning = out.all_output().contains("signing skipped");
        assert_eq!(
            warning,
            warned,
            "{name}: warning = {warning}\n{}",
            out.all_output()
        );
        if warned {
            for v in ALL.iter().filter(|v| !keep.contains(v)) {
                assert!(
                    out.stdout.contains(v),
                    "{name}: warning must name {v}\n{}",
                    out.stdout
                );
            }
        }
        if code == 2 {
            assert_eq!(out.reason(), "InvalidConfiguration", "{name}");
            assert!(
                out.termination.contains("SIGSTORE_FULCIO_URL"),
                "{name}: {}",
                out.termination
            );
            assert!(
                out.termination.contains("SIGSTORE_REKOR_URL"),
                "{name}: {}",
                out.termination
            );
        }
    }
    // Signed rows only: one certificate and one log entry each.
    assert_eq!(sig.fulcio.issued(), 2);
    assert_eq!(sig.rekor.size(), 2);
    Ok(())
}
