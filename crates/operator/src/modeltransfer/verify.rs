//! The `Registered` check: after the Job succeeded, require the artifact model-sync reported to
//! be LIVE with the URI it reported.
//!
//! The operator mints no tokens and sends none of its own. Where the registry needs no token,
//! or the author named a token Secret for it (`tokenSecretRef`, read for the request and never
//! stored, under the same plain-HTTP opt-in as the Job's), the operator reads the artifact back
//! itself. Where the Job authenticates with its own ServiceAccount token (a `modelRegistryRef`
//! behind kube-rbac-proxy, an https `url` without a token Secret), reading the registry would
//! take a token for an account that is not the operator's: the check uses the `readBack` of
//! the termination message instead, the artifact as model-sync read it from the registry after
//! registering it. It trusts what the Job trusts: the registry CA on top of the platform
//! roots, or, with `spec.job.caBundleConfigMapRef` (the Job's `SSL_CERT_FILE`), that bundle
//! instead of the platform roots, plus the registry CA.
//!
//! One slow or dead registry must not hold up the transfers of other registries: the check runs
//! inside a reconcile, and the controller runs only a few at once. So every check is bounded
//! three ways (see [`gate`]): an overall deadline over all its requests (the Secret and CA reads
//! included), at most [`gate::PER_REGISTRY`] checks in flight per registry address, and after a
//! registry failed to answer, checks of it fail at once for [`gate::HOLD`] instead of waiting
//! again. A check turned away so reports `RegistryUnreachable` and is retried like any other.
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use mro_api::common::ConfigMapKeyValue;
use registry_client::{ArtifactState, BearerToken, Client, ClientConfig, RetryPolicy};

use super::build::registry::{RegistryWiring, TokenSource};
use super::status::{ARTIFACT_NOT_LIVE, MISSING_RESULT, REGISTRY_UNREACHABLE, Registration};
use super::termination::{ReadBack, TransferResult};

/// Reads the artifact model-sync reported and compares it with the report.
pub async fn check(
    client: &kube::Client,
    namespace: &str,
    wiring: &RegistryWiring,
    ca_bundle: Option<&ConfigMapKeyValue>,
    result: &TransferResult,
) -> Registration {
    let (Some(id), Some(expected)) = (&result.model_artifact_id, &result.uri) else {
        return Registration::NotLive {
            reason: MISSING_RESULT,
            message: "the transfer's termination message carries no modelArtifactId and uri; \
                      the registration cannot be verified"
                .into(),
        };
    };
    if wiring.token == TokenSource::ServiceAccount {
        return from_read_back(id, expected, result.read_back.as_ref());
    }
    let address = wiring.base_url();
    let _permit = match gate::GATES.enter(&address) {
        Ok(p) => p,
        Err(message) => {
            return Registration::NotLive {
                reason: REGISTRY_UNREACHABLE,
                message,
            };
        }
    };
    let ask = ask(client, namespace, wiring, ca_bundle, id, expected);
    match tokio::time::timeout(gate::DEADLINE, ask).await {
        Ok(Asked::Answered(r)) => r,
        Ok(Asked::NoAnswer(message)) => {
            gate::GATES.failed(&address);
            Registration::NotLive {
                reason: REGISTRY_UNREACHABLE,
                message,
            }
        }
        Err(_) => {
            let message = format!(
                "cannot read model artifact {id} from {address}: no answer within {} s",
                gate::DEADLINE.as_secs()
            );
            gate::GATES.failed(&address);
            Registration::NotLive {
                reason: REGISTRY_UNREACHABLE,
                message,
            }
        }
    }
}

/// What asking the registry gave: a verdict, or no answer (a transport failure, which makes
/// the gate hold the registry back for a while).
enum Asked {
    Answered(Registration),
    NoAnswer(String),
}

async fn ask(
    client: &kube::Client,
    namespace: &str,
    wiring: &RegistryWiring,
    ca_bundle: Option<&ConfigMapKeyValue>,
    id: &str,
    expected: &str,
) -> Asked {
    let registry = match connect(client, namespace, wiring, ca_bundle).await {
        Ok(r) => r,
        Err(message) => {
            return Asked::Answered(Registration::NotLive {
                reason: REGISTRY_UNREACHABLE,
                message,
            });
        }
    };
    let verdict = match registry.get_model_artifact(id).await {
        Ok(a) => {
            let state = a.fields.state.unwrap_or_default();
            let uri = a.fields.uri.unwrap_or_default();
            if state != ArtifactState::Live {
                Registration::NotLive {
                    reason: ARTIFACT_NOT_LIVE,
                    message: format!("model artifact {id} is in state {state:?}, not LIVE"),
                }
            } else if uri != expected {
                Registration::NotLive {
                    reason: ARTIFACT_NOT_LIVE,
                    message: format!(
                        "model artifact {id} has URI {uri:?}, expected {expected:?} (changed since?)"
                    ),
                }
            } else {
                Registration::Live
            }
        }
        Err(registry_client::Error::NotFound { .. }) => Registration::NotLive {
            reason: ARTIFACT_NOT_LIVE,
            message: format!("model artifact {id} does not exist in the registry"),
        },
        Err(e @ registry_client::Error::Transport { .. }) => {
            return Asked::NoAnswer(format!(
                "cannot read model artifact {id} from {}: {e}",
                wiring.base_url()
            ));
        }
        Err(e) => Registration::NotLive {
            reason: REGISTRY_UNREACHABLE,
            message: format!(
                "cannot read model artifact {id} from {}: {e}",
                wiring.base_url()
            ),
        },
    };
    Asked::Answered(verdict)
}

/// The verdict from model-sync's read-back of the artifact it registered.
pub fn from_read_back(id: &str, expected: &str, rb: Option<&ReadBack>) -> Registration {
    let Some(rb) = rb else {
        return Registration::NotLive {
            reason: MISSING_RESULT,
            message: format!(
                "the transfer's termination message carries no readBack of model artifact {id}; \
                 the registration cannot be verified (the registry takes the Job's own token, \
                 which the operator does not borrow)"
            ),
        };
    };
    let state = rb.state.as_deref().unwrap_or("UNKNOWN");
    if rb.model_artifact_id.as_deref() != Some(id) {
        Registration::NotLive {
            reason: MISSING_RESULT,
            message: format!(
                "the readBack names model artifact {:?}, the result {id:?}",
                rb.model_artifact_id.as_deref().unwrap_or("")
            ),
        }
    } else if state != "LIVE" {
        Registration::NotLive {
            reason: ARTIFACT_NOT_LIVE,
            message: format!(
                "model artifact {id} is in state {state}, not LIVE (read back by the Job)"
            ),
        }
    } else if rb.uri.as_deref() != Some(expected) {
        Registration::NotLive {
            reason: ARTIFACT_NOT_LIVE,
            message: format!(
                "model artifact {id} has URI {:?}, expected {expected:?} (read back by the Job)",
                rb.uri.as_deref().unwrap_or("")
            ),
        }
    } else {
        Registration::Live
    }
}

async fn connect(
    client: &kube::Client,
    namespace: &str,
    wiring: &RegistryWiring,
    ca_bundle: Option<&ConfigMapKeyValue>,
) -> Result<Client, String> {
    let mut cfg = ClientConfig::new(&wiring.base_url()).map_err(|e| e.to_string())?;
    // Short, single attempts: this runs inside a reconcile, which is retried anyway.
    cfg.connect_timeout = Duration::from_secs(5);
    cfg.request_timeout = Duration::from_secs(10);
    cfg = cfg.with_retry(RetryPolicy::none());
    match &wiring.token {
        TokenSource::None => {}
        TokenSource::Secret(s) => {
            let secret = Api::<Secret>::namespaced(client.clone(), namespace)
                .get(&s.name)
                .await
                .map_err(|e| format!("cannot read Secret {}: {e}", s.name))?;
            let value = secret
                .data
                .as_ref()
                .and_then(|d| d.get(&s.key))
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
                .ok_or_else(|| format!("Secret {} has no key {}", s.name, s.key))?;
            cfg = cfg.with_token(BearerToken::new(value));
        }
        // Never reached: [`check`] uses the read-back for these.
        TokenSource::ServiceAccount => {
            return Err(
                "the registry takes the Job's own token, which the operator does not borrow".into(),
            );
        }
    }
    let mut pem = Vec::new();
    if let Some(bundle) = ca_bundle {
        pem = read_ca(client, namespace, bundle).await?;
        pem.push(b'\n');
        cfg.custom_ca_only = true;
    }
    if let Some(ca) = &wiring.ca {
        pem.extend(read_ca(client, namespace, ca).await?);
    }
    if !pem.is_empty() {
        cfg = cfg.with_custom_ca_pem(pem);
    }
    Client::new(cfg).map_err(|e| e.to_string())
}

async fn read_ca(
    client: &kube::Client,
    namespace: &str,
    ca: &ConfigMapKeyValue,
) -> Result<Vec<u8>, String> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get(&ca.name)
        .await
        .map_err(|e| format!("cannot read ConfigMap {}: {e}", ca.name))?;
    cm.data
        .as_ref()
        .and_then(|d| d.get(&ca.key))
        .map(|s| s.clone().into_bytes())
        .or_else(|| {
            cm.binary_data
                .as_ref()
                .and_then(|d| d.get(&ca.key))
                .map(|b| b.0.clone())
        })
        .ok_or_else(|| format!("ConfigMap {} has no key {}", ca.name, ca.key))
}

/// Bounds on the checks of each registry address, process-wide (every reconcile of every
/// transfer shares them, as they share the controller's few reconcile slots).
pub mod gate {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    use std::time::{Duration, Instant};

    /// Checks of one registry address in flight at once; more are turned away at once.
    pub const PER_REGISTRY: usize = 2;
    /// How long all requests of one check (Secret, CAs, the artifact) may take together.
    pub const DEADLINE: Duration = Duration::from_secs(15);
    /// After a registry gave no answer, how long its checks are turned away without asking.
    pub const HOLD: Duration = Duration::from_secs(15);

    /// The operator's gates.
    pub static GATES: LazyLock<Gates> = LazyLock::new(Gates::default);

    #[derive(Default)]
    pub struct Gates(Mutex<HashMap<String, State>>);

    #[derive(Default)]
    struct State {
        in_flight: usize,
        /// The last failure and until when it holds the registry back.
        held: Option<(Instant, String)>,
    }

    impl State {
        fn idle(&self, now: Instant) -> bool {
            self.in_flight == 0 && self.held.as_ref().is_none_or(|(until, _)| *until <= now)
        }
    }

    /// One admitted check; leaving (drop) frees its place.
    pub struct Permit<'a> {
        gates: &'a Gates,
        address: String,
    }

    impl Gates {
        /// Admits a check of `address`, or says why not (held back after a failure, or
        /// [`PER_REGISTRY`] checks already in flight).
        pub fn enter(&self, address: &str) -> Result<Permit<'_>, String> {
            self.enter_at(address, Instant::now())
        }

        fn enter_at(&self, address: &str, now: Instant) -> Result<Permit<'_>, String> {
            let mut map = self.0.lock().expect("registry gates lock");
            let state = map.entry(address.to_string()).or_default();
            if let Some((until, why)) = &state.held
                && *until > now
            {
                // The same words every time: a status that differs only by a countdown would be
                // written again on every retry.
                return Err(format!(
                    "{why}; not asked again within {} s of that",
                    HOLD.as_secs()
                ));
            }
            if state.in_flight >= PER_REGISTRY {
                return Err(format!(
                    "{PER_REGISTRY} checks of {address} are in flight already; checked again later"
                ));
            }
            state.in_flight += 1;
            Ok(Permit {
                gates: self,
                address: address.to_string(),
            })
        }

        /// Holds `address` back for [`HOLD`]: it did not answer a check.
        pub fn failed(&self, address: &str) {
            self.failed_at(address, Instant::now());
        }

        fn failed_at(&self, address: &str, now: Instant) {
            let mut map = self.0.lock().expect("registry gates lock");
            // Words about the registry only: the checks turned away are other transfers'.
            let why = format!("the registry at {address} did not answer a recent check");
            map.entry(address.to_string()).or_default().held = Some((now + HOLD, why));
        }

        /// Addresses with state kept (in flight or held back); idle ones are forgotten.
        #[cfg(test)]
        fn kept(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    impl Drop for Permit<'_> {
        fn drop(&mut self) {
            let mut map = self.gates.0.lock().expect("registry gates lock");
            let now = Instant::now();
            if let Some(state) = map.get_mut(&self.address) {
                state.in_flight -= 1;
            }
            // Memory stays bounded by the registries in use: idle entries go.
            map.retain(|_, s| !s.idle(now));
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn at_most_per_registry_checks_in_flight_and_others_unaffected() {
            let g = Gates::default();
            let held: Vec<_> = (0..PER_REGISTRY)
                .map(|_| g.enter("http://dead:1").unwrap())
                .collect();
            let refused = g.enter("http://dead:1").err().unwrap();
            assert!(refused.contains("in flight"), "{refused}");
            // Another registry is not held up by the first one's checks.
            assert!(g.enter("http://live:1").is_ok());
            drop(held);
            assert!(g.enter("http://dead:1").is_ok());
            assert_eq!(g.kept(), 0, "idle addresses are forgotten");
        }

        #[test]
        fn a_registry_that_gave_no_answer_is_held_back_for_a_while() {
            let g = Gates::default();
            let t0 = Instant::now();
            g.failed_at("http://dead:1", t0);
            let why = g.enter_at("http://dead:1", t0 + HOLD / 2).err().unwrap();
            assert!(
                why.starts_with("the registry at http://dead:1 did not answer"),
                "{why}"
            );
            // The same words later in the hold: a retry writes no new status.
            assert_eq!(g.enter_at("http://dead:1", t0 + HOLD / 4).err(), Some(why));
            assert!(g.enter_at("http://other:1", t0).is_ok());
            assert!(g.enter_at("http://dead:1", t0 + HOLD).is_ok());
        }
    }
}
