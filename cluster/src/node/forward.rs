//! Forwarding: a request for a namespace another node owns is sent on to that owner unchanged
//! (but for a hop count, which the HTTP face adds), and its answer passed back as it came.

use memsilo::{Error, Result};

use super::Node;

/// An answer from the owner, passed through unchanged.
pub struct Forwarded {
    /// HTTP status.
    pub status: u16,
    /// Headers worth passing on (content type, counts, rate limits, retry-after).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Node {
    /// Sends a request on to the owner at `url`, unchanged but for a hop count.
    pub async fn forward(
        &self,
        url: &str,
        method: &str,
        path_and_query: &str,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    ) -> Result<Forwarded> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| Error::internal_from("forwarded method", e))?;
        let mut req = self.http.request(method, format!("{url}{path_and_query}"));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let resp = req.body(body).send().await.map_err(|e| {
            Error::internal_from(
                format!("the namespace's owner at {url} did not answer (retry)"),
                e,
            )
        })?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter(|(n, _)| {
                let n = n.as_str();
                n == "content-type" || n == "retry-after" || n.starts_with("x-")
            })
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::internal_from("reading the owner's answer", e))?
            .to_vec();
        Ok(Forwarded { status, headers, body })
    }
}
