//! Reads served from the API server's watch cache (`resourceVersion=0`): no etcd read, fresh to
//! within the watch delay. For reads whose staleness a later reconcile corrects.
use kube::Api;
use kube::api::GetParams;
use serde::de::DeserializeOwned;

/// The object `name` from the watch cache, `None` when the cache does not have it.
pub async fn get_opt<K>(api: &Api<K>, name: &str) -> kube::Result<Option<K>>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.get_with(name, &GetParams::any()).await {
        Ok(obj) => Ok(Some(obj)),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}
