//! A reflection-driven client, as grpcurl is: it learns every message type from the server's
//! `grpc.reflection.v1` service (nothing compiled in), turns JSON into requests, and decodes
//! answers and error details (`google.rpc.*` included) back to proto3 JSON.

use std::{collections::HashMap, str::FromStr, time::Duration};

use bytes::{Buf, BufMut};
use futures_util::StreamExt;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

/// Passes already-encoded messages through.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

pub struct DynClient {
    channel: Channel,
    pub pool: DescriptorPool,
}

/// What a call answered, as grpcurl would print it.
pub enum Answer {
    Ok(Vec<serde_json::Value>),
    Err {
        code: tonic::Code,
        message: String,
        details: Vec<serde_json::Value>,
    },
}

impl DynClient {
    pub async fn new(channel: Channel) -> Self {
        Self {
            channel,
            pool: DescriptorPool::new(),
        }
    }

    async fn reflect(&self, req: MessageRequest) -> MessageResponse {
        let mut c = ServerReflectionClient::new(self.channel.clone());
        let mut stream = c
            .server_reflection_info(tokio_stream::iter([ServerReflectionRequest {
                host: String::new(),
                message_request: Some(req),
            }]))
            .await
            .expect("reflection call")
            .into_inner();
        stream
            .next()
            .await
            .expect("a reflection answer")
            .expect("reflection answer ok")
            .message_response
            .expect("reflection response body")
    }

    /// `grpcurl list`.
    pub async fn list(&self) -> Vec<String> {
        match self
            .reflect(MessageRequest::ListServices(String::new()))
            .await
        {
            MessageResponse::ListServicesResponse(l) => {
                let mut v: Vec<String> = l.service.into_iter().map(|s| s.name).collect();
                v.sort();
                v
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }

    /// Loads the file that defines `symbol` (and its imports) from the server's reflection.
    /// `Err` carries the server's answer when it does not know the symbol.
    pub async fn learn(&mut self, symbol: &str) -> Result<(), String> {
        if self.pool.get_message_by_name(symbol).is_some()
            || self.pool.get_service_by_name(symbol).is_some()
        {
            return Ok(());
        }
        let mut protos: HashMap<String, prost_types::FileDescriptorProto> = HashMap::new();
        let mut ask = vec![MessageRequest::FileContainingSymbol(symbol.to_owned())];
        // Like grpcurl: the file that defines the symbol, then each import not known yet.
        while let Some(req) = ask.pop() {
            let files = match self.reflect(req).await {
                MessageResponse::FileDescriptorResponse(f) => f.file_descriptor_proto,
                MessageResponse::ErrorResponse(e) => return Err(e.error_message),
                other => return Err(format!("unexpected reflection answer {other:?}")),
            };
            for bytes in files {
                let f = prost_types::FileDescriptorProto::decode(bytes.as_slice())
                    .map_err(|e| e.to_string())?;
                for d in &f.dependency {
                    if self.pool.get_file_by_name(d).is_none() && !protos.contains_key(d) {
                        ask.push(MessageRequest::FileByFilename(d.clone()));
                    }
                }
                protos.insert(f.name().to_owned(), f);
            }
        }
        // Dependencies first (reflection answers a file with its imports, in no set order).
        let mut pending: Vec<_> = protos
            .into_values()
            .filter(|f| self.pool.get_file_by_name(f.name()).is_none())
            .collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut rest = Vec::new();
            for f in pending {
                if f.dependency
                    .iter()
                    .all(|d| self.pool.get_file_by_name(d).is_some())
                {
                    self.pool
                        .add_file_descriptor_proto(f)
                        .map_err(|e| e.to_string())?;
                } else {
                    rest.push(f);
                }
            }
            if rest.len() == before {
                return Err(format!("unresolved imports for {symbol}"));
            }
            pending = rest;
        }
        Ok(())
    }

    fn method(&self, full: &str) -> MethodDescriptor {
        let (service, method) = full.rsplit_once('/').expect("Service/Method");
        self.pool
            .get_service_by_name(service)
            .unwrap_or_else(|| panic!("no service {service}"))
            .methods()
            .find(|m| m.name() == method)
            .unwrap_or_else(|| panic!("no method {full}"))
    }

    /// Sends `json` to `Service/Method`; streaming answers are read for `stream_for`.
    pub async fn call(&mut self, full: &str, json: &str, stream_for: Duration) -> Answer {
        let service = full.rsplit_once('/').expect("Service/Method").0.to_owned();
        self.learn(&service).await.expect("service by reflection");
        let m = self.method(full);
        let mut de = serde_json::Deserializer::from_str(json);
        let req = DynamicMessage::deserialize(m.input(), &mut de).unwrap_or_else(|e| {
            panic!(
                "README's request for {full} is not valid JSON for {}: {e}",
                m.input().full_name()
            )
        });
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_str(&format!("/{full}")).expect("path");
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.expect("channel ready");
        let request = tonic::Request::new(req.encode_to_vec());
        let result = if m.is_server_streaming() {
            match grpc.server_streaming(request, path, Raw).await {
                Ok(resp) => {
                    let mut stream = resp.into_inner();
                    let mut out = Vec::new();
                    let deadline = tokio::time::Instant::now() + stream_for;
                    loop {
                        match tokio::time::timeout_at(deadline, stream.next()).await {
                            Ok(Some(Ok(bytes))) => out.push(bytes),
                            Ok(Some(Err(st))) => break Err(st),
                            Ok(None) | Err(_) => break Ok(out),
                        }
                    }
                }
                Err(st) => Err(st),
            }
        } else {
            grpc.unary(request, path, Raw)
                .await
                .map(|r| vec![r.into_inner()])
        };
        match result {
            Ok(msgs) => Answer::Ok(
                msgs.into_iter()
                    .map(|b| {
                        let msg = DynamicMessage::decode(m.output(), b.as_slice())
                            .expect("answer decodes");
                        serde_json::to_value(&msg).expect("answer to JSON")
                    })
                    .collect(),
            ),
            Err(st) => {
                let details = self.details(&st).await;
                Answer::Err {
                    code: st.code(),
                    message: st.message().to_owned(),
                    details,
                }
            }
        }
    }

    /// The `google.rpc.Status` details, each decoded by its `@type` — learnt from reflection,
    /// as `grpcurl -v` does. Panics when the server cannot describe a detail type.
    async fn details(&mut self, st: &Status) -> Vec<serde_json::Value> {
        if st.details().is_empty() {
            return Vec::new();
        }
        let status = tonic_types::pb::Status::decode(st.details()).expect("google.rpc.Status");
        let mut out = Vec::new();
        for any in status.details {
            let name = any
                .type_url
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            if let Err(e) = self.learn(&name).await {
                panic!("reflection cannot describe error detail {name}: {e}");
            }
            let desc = self.pool.get_message_by_name(&name).expect("learnt");
            let msg = DynamicMessage::decode(desc, any.value.as_slice()).expect("detail decodes");
            let mut v = serde_json::to_value(&msg).expect("detail to JSON");
            if let serde_json::Value::Object(o) = &mut v {
                o.insert("@type".into(), any.type_url.clone().into());
            }
            out.push(v);
        }
        out
    }
}
