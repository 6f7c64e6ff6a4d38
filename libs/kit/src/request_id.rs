//! `x-request-id`: taken from the caller when it sends a usable one (up to
//! 128 printable ASCII characters), generated otherwise, put on the request
//! for the handlers and their logs, and echoed in the response metadata so a
//! caller can quote it to an operator.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderValue;
use rebalancer_proto::client::REQUEST_ID_HEADER;
use tower::{Layer, Service};

/// Longest request id kept as sent.
const MAX_LEN: usize = 128;

/// See the module.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestId { inner }
    }
}

/// See [`RequestIdLayer`].
#[derive(Debug, Clone)]
pub struct RequestId<S> {
    inner: S,
}

/// The caller's id when usable, else a new one.
fn request_id(sent: Option<&HeaderValue>) -> HeaderValue {
    sent.filter(|value| {
        let bytes = value.as_bytes();
        !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(u8::is_ascii_graphic)
    })
    .cloned()
    .or_else(|| HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).ok())
    .unwrap_or_else(|| HeaderValue::from_static("unknown"))
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> Service<http::Request<B>> for RequestId<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let id = request_id(request.headers().get(REQUEST_ID_HEADER));
        request.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            response.headers_mut().insert(REQUEST_ID_HEADER, id);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    async fn echoed(sent: Option<&str>) -> (String, String) {
        let service =
            RequestIdLayer.layer(tower::service_fn(|request: http::Request<()>| async move {
                let seen = request
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                Ok::<_, std::convert::Infallible>(http::Response::new(seen))
            }));
        let mut request = http::Request::new(());
        if let Some(sent) = sent
            && let Ok(value) = HeaderValue::from_str(sent)
        {
            request.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        let response = service.oneshot(request).await.unwrap_or_default();
        let echoed = response
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (response.into_body(), echoed)
    }

    #[tokio::test]
    async fn a_callers_id_is_kept_and_echoed() {
        assert_eq!(
            echoed(Some("req-42")).await,
            ("req-42".to_owned(), "req-42".to_owned())
        );
    }

    #[tokio::test]
    async fn a_missing_or_unusable_id_is_generated() {
        for sent in [None, Some(""), Some(&"x".repeat(500)[..])] {
            let (seen, echoed) = echoed(sent).await;
            assert_eq!(seen, echoed);
            assert_eq!(seen.len(), 36, "a UUID: {seen}");
        }
    }
}
