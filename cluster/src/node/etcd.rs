//! etcd access: every call is retried on the other members while the one it went to is down
//! (up to ~5 s); any other failure is `internal`, with the etcd error as its cause.

use std::time::Duration;

use etcd_client::{GetOptions, Txn};
use memsilo::{Error, Result};

use super::Node;

fn etcd_err(e: etcd_client::Error) -> Error {
    Error::internal_from("etcd", e)
}

/// Whether an etcd call failed because the member it went to is down (the client balances
/// over every member, and a dead one fails calls until it is dropped from the pool).
fn member_down(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(s) => format!("{:?}", s.code()) == "Unavailable",
        _ => false,
    }
}

/// Retries an etcd call on the other members while one is down (up to ~5 s).
pub(super) async fn with_retry<T, F, Fut>(etcd: &etcd_client::Client, mut call: F) -> Result<T>
where
    F: FnMut(etcd_client::Client) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let mut tries = 0;
    loop {
        match call(etcd.clone()).await {
            Ok(v) => return Ok(v),
            Err(e) if tries < 50 && member_down(&e) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(etcd_err(e)),
        }
    }
}

impl Node {
    pub(crate) async fn get(
        &self,
        key: &str,
        options: Option<GetOptions>,
    ) -> Result<etcd_client::GetResponse> {
        with_retry(&self.etcd, |mut c| {
            let (key, options) = (key.to_owned(), options.clone());
            async move { c.get(key, options).await }
        })
        .await
    }

    pub(crate) async fn txn(&self, txn: &Txn) -> Result<etcd_client::TxnResponse> {
        with_retry(&self.etcd, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    /// An etcd failure is the internal error's cause (`source`, and `causes` in its body), not
    /// only words in its message.
    #[test]
    fn an_etcd_failure_is_the_internal_errors_cause() {
        let e = super::etcd_err(etcd_client::Error::InvalidArgs("no key".into()));
        assert_eq!(e.code(), memsilo::ErrorCode::Internal);
        assert_eq!(e.to_string(), "internal error: etcd: invalid arguments: no key");
        assert_eq!(e.causes(), ["invalid arguments: no key"]);
        assert!(std::error::Error::source(&e).is_some());
    }
}
