//! `WatchEvents` on the wire: every event is encoded once (`pns.v1.Event`, prost's encoding)
//! and the same bytes are written to every stream that receives it. The generated server
//! encodes a `pb::Event` per stream, so `CallRoutes` serves `/pns.v1.CallService/WatchEvents`
//! itself with a codec that writes those bytes as they are, and hands every other
//! `CallService` method to the generated server. The bytes on the wire are exactly what the
//! generated encoder would write: clients (generated or not) and `buf breaking` see no change.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use prost::Message;
use tokio_stream::Stream;
use tonic::{
    Status,
    body::Body,
    codec::{BufferSettings, Codec, EncodeBuf, Encoder},
    codegen::{BoxFuture, StdError, http},
    server::{Grpc, NamedService, ServerStreamingService},
};
use tonic_prost::ProstDecoder;

use super::call_service::CallApi;
use super::event_convert::event_to_pb;
use super::pb::{self, call_service_server::CallServiceServer};
use super::watch::WatchStream;
use crate::domain::{Event, Repository};
use crate::events::Published;

/// One `pns.v1.Event`, encoded (shared: cloning it copies no event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireEvent(Bytes);

impl WireEvent {
    pub fn encode(e: Event) -> Self {
        Self(Bytes::from(event_to_pb(e).encode_to_vec()))
    }

    /// A ring event's shared encoding (made by the first stream that sends it).
    pub fn of(p: &Published) -> Self {
        Self(p.wire(|e| Self::encode(e.clone()).0))
    }

    /// The message, decoded again (for callers of the generated trait method).
    pub fn decode(&self) -> Result<pb::Event, Status> {
        pb::Event::decode(self.0.clone())
            .map_err(|e| Status::internal(format!("event did not decode: {e}")))
    }

    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

/// A subscriber's stream with its events decoded again (the generated trait's form).
pub struct Decoded(pub WatchStream);

impl Stream for Decoded {
    type Item = Result<pb::Event, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0)
            .poll_next(cx)
            .map(|item| item.map(|r| r.and_then(|w| w.decode())))
    }
}

/// Requests decoded by prost as usual; responses written as they were encoded.
#[derive(Default)]
struct WatchCodec;

impl Codec for WatchCodec {
    type Encode = WireEvent;
    type Decode = pb::WatchEventsRequest;
    type Encoder = WireEncoder;
    type Decoder = ProstDecoder<pb::WatchEventsRequest>;

    fn encoder(&mut self) -> WireEncoder {
        WireEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::default())
    }
}

struct WireEncoder;

impl Encoder for WireEncoder {
    type Item = WireEvent;
    type Error = Status;

    fn encode(&mut self, item: WireEvent, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item.0);
        Ok(())
    }
}

/// `WatchEvents` for `Grpc::server_streaming`.
struct WatchSvc<R>(Arc<CallApi<R>>);

impl<R: Repository> ServerStreamingService<pb::WatchEventsRequest> for WatchSvc<R> {
    type Response = WireEvent;
    type ResponseStream = WatchStream;
    type Future = BoxFuture<tonic::Response<WatchStream>, Status>;

    fn call(&mut self, req: tonic::Request<pb::WatchEventsRequest>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { api.watch(req).await })
    }
}

/// `pns.v1.CallService`: `WatchEvents` with pre-encoded events, the rest by the generated server.
pub struct CallRoutes<R> {
    api: Arc<CallApi<R>>,
    generated: CallServiceServer<CallApi<R>>,
    max_decoding: usize,
}

impl<R> Clone for CallRoutes<R> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            generated: self.generated.clone(),
            max_decoding: self.max_decoding,
        }
    }
}

impl<R: Repository> CallRoutes<R> {
    /// Requests larger than `max_decoding` bytes are refused before they are decoded.
    pub fn new(api: CallApi<R>, max_decoding: usize) -> Self {
        let api = Arc::new(api);
        Self {
            generated: CallServiceServer::from_arc(api.clone())
                .max_decoding_message_size(max_decoding),
            api,
            max_decoding,
        }
    }
}

impl<R> NamedService for CallRoutes<R> {
    const NAME: &'static str = "pns.v1.CallService";
}

const WATCH_PATH: &str = "/pns.v1.CallService/WatchEvents";

impl<R, B> tower::Service<http::Request<B>> for CallRoutes<R>
where
    R: Repository,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != WATCH_PATH {
            return self.generated.call(req);
        }
        let svc = WatchSvc(self.api.clone());
        let max = self.max_decoding;
        Box::pin(async move {
            let mut grpc = Grpc::new(WatchCodec).apply_max_message_size_config(Some(max), None);
            Ok(grpc.server_streaming(svc, req).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_the_generated_encoding() {
        let e = Event {
            sequence: 42,
            kind: "binding.created".into(),
            pool_key: "p".into(),
            detail: serde_json::json!({"mode": "xyb"}),
            ..Default::default()
        };
        let w = WireEvent::encode(e.clone());
        assert_eq!(w.bytes().as_ref(), event_to_pb(e.clone()).encode_to_vec());
        assert_eq!(w.decode().unwrap(), event_to_pb(e.clone()));
        let p = Published::new(e);
        assert_eq!(WireEvent::of(&p), w);
        assert_eq!(
            WireEvent::of(&p).0.as_ptr(),
            WireEvent::of(&p).0.as_ptr(),
            "shared"
        );
    }
}
