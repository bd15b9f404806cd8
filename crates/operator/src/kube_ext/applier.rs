//! The order in which a controller applies its children: in waves. Each wave's applies run at
//! once (a reconcile waits for one round trip per wave, not one per child); the next wave starts
//! only after every apply of this one completed, and the caller's check of a wave's results runs
//! only then, so a failing child never cancels another child's request midway. Waves exist for
//! what the API server checks at admission: a RoleBinding needs its Role, a pod its
//! ServiceAccount, so what refers comes after what it refers to.
use std::future::Future;
use std::ops::ControlFlow;

use super::child::Child;

/// Children grouped into waves, applied in order.
pub struct Waves<'c> {
    waves: Vec<Vec<&'c Child>>,
}

impl<'c> Waves<'c> {
    /// `count` waves; each child goes to wave `wave_of(child)` (which must be below `count`).
    pub fn by(
        children: impl IntoIterator<Item = &'c Child>,
        count: usize,
        wave_of: impl Fn(&Child) -> usize,
    ) -> Waves<'c> {
        let mut waves: Vec<Vec<&'c Child>> = (0..count).map(|_| Vec::new()).collect();
        for child in children {
            waves[wave_of(child)].push(child);
        }
        Waves { waves }
    }

    /// The given waves, in order.
    pub fn new(waves: Vec<Vec<&'c Child>>) -> Waves<'c> {
        Waves { waves }
    }

    /// Applies wave after wave with `apply`; after each wave `check` sees every child's result
    /// and either lets the next wave go on, or stops with a value (returned; later waves are not
    /// applied).
    pub async fn apply<T, B, Fut>(
        self,
        apply: impl Fn(&'c Child) -> Fut,
        mut check: impl FnMut(Vec<(&'c Child, T)>) -> ControlFlow<B>,
    ) -> Option<B>
    where
        Fut: Future<Output = T>,
    {
        for wave in self.waves {
            let results = futures::future::join_all(wave.iter().map(|c| apply(c))).await;
            if let ControlFlow::Break(stop) = check(wave.into_iter().zip(results).collect()) {
                return Some(stop);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn child(name: &str) -> Child {
        Child::typed(&ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn waves_run_in_order_and_a_break_stops_the_later_ones() {
        let children = [child("b1"), child("a1"), child("a2"), child("c1")];
        let waves = Waves::by(&children, 3, |c| match c.name().as_bytes()[0] {
            b'a' => 0,
            b'b' => 1,
            _ => 2,
        });
        let mut seen = Vec::new();
        let stop = waves
            .apply(
                |c| std::future::ready(c.name()),
                |results: Vec<(&Child, String)>| {
                    let names: Vec<String> = results.into_iter().map(|(_, n)| n).collect();
                    let stop = names.contains(&"b1".to_string());
                    seen.push(names);
                    if stop {
                        ControlFlow::Break("stopped at b")
                    } else {
                        ControlFlow::Continue(())
                    }
                },
            )
            .await;
        assert_eq!(stop, Some("stopped at b"));
        assert_eq!(
            seen,
            vec![vec!["a1", "a2"], vec!["b1"]],
            "wave c never applied"
        );
    }
}
