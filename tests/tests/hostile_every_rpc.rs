//! Generated hostile requests to every RPC of `proto/`, built from the
//! descriptor set (so a new RPC is fuzzed the day it is added), on both
//! backends: every field set or not at random to boundary and malformed
//! decimals, 20-decimal strings, huge and odd strings (NUL, unicode, SQL),
//! extreme integers and timestamps, unknown enum values, empty and large
//! repeated fields, nested messages. No call may answer INTERNAL or UNKNOWN
//! (a panic shows as one of them), and every INVALID_ARGUMENT names its
//! fields. Prints the requests sent and the statuses by code.
//!
//! `FUZZ_PER_RPC=<n>` requests per RPC and backend (default 12; CI runs
//! the default). `FUZZ_SEED=<n>` replays a run.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut};
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    MethodDescriptor, Value,
};
use rebalancer_proto::client::CallContext;
use rebalancer_tests::{Backend, TestStack};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_types::StatusExt;

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Strings that have broken services before, or might.
const STRINGS: &[&str] = &[
    "",
    "0",
    "-1",
    "1",
    "0.00000000000000000001",
    "12.345678901234567890123",
    "79228162514264337593543950335",
    "-79228162514264337593543950335",
    "7922816251426433759354395033.5",
    "14000000000000000000000000000",
    "1e30",
    "NaN",
    "Infinity",
    "  5 ",
    "SPY",
    "spy",
    "BTC/USD",
    "QQQ",
    "acct-1",
    "0193e9b2-1f00-7000-8000-000000000000",
    "r1",
    "r-1",
    "W/\"r1\"",
    "2026-03-03",
    "9999-12-31",
    "2026-02-30",
    "09:45",
    "25:61",
    "' OR 1=1 --",
    "\0",
    "a\0b",
    "x\u{202e}y",
    "😀",
    "\u{fffd}\u{fffd}",
    "../../etc/passwd",
    "%00",
    "AAAA",
    "eyJhbGciOiJub25lIn0",
];

fn hostile_string(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 => "9".repeat(1 + rng.below(40)),
        1 => format!(
            "{}.{}",
            rng.next() % 1_000_000,
            "1".repeat(1 + rng.below(30))
        ),
        2 => "x".repeat(if rng.chance(4) { 70_000 } else { 300 }),
        3 => format!("-{}", rng.next() % 10_000),
        _ => rng.pick(STRINGS).to_owned(),
    }
}

fn scalar(field: &FieldDescriptor, rng: &mut Rng, depth: usize) -> Value {
    match field.kind() {
        Kind::String => Value::String(hostile_string(rng)),
        Kind::Bytes => Value::Bytes(vec![0xff; rng.below(64)].into()),
        Kind::Bool => Value::Bool(rng.chance(2)),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(
            *[0, 1, -1, 7, 1000, 100_000, i32::MAX, i32::MIN]
                .get(rng.below(8))
                .unwrap_or(&0),
        ),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(
            *[
                0,
                1,
                -1,
                86_400,
                253_402_300_800,
                2_534_023_008_000,
                i64::MAX,
                i64::MIN,
            ]
            .get(rng.below(8))
            .unwrap_or(&0),
        ),
        Kind::Uint32 | Kind::Fixed32 => {
            Value::U32(*[0, 1, u32::MAX].get(rng.below(3)).unwrap_or(&0))
        }
        Kind::Uint64 | Kind::Fixed64 => {
            Value::U64(*[0, 1, u64::MAX].get(rng.below(3)).unwrap_or(&0))
        }
        Kind::Float => Value::F32(
            *[0.0, -1.0, f32::NAN, f32::INFINITY]
                .get(rng.below(4))
                .unwrap_or(&0.0),
        ),
        Kind::Double => Value::F64(
            *[0.0, -1.0, f64::NAN, f64::INFINITY]
                .get(rng.below(4))
                .unwrap_or(&0.0),
        ),
        Kind::Enum(descriptor) => {
            let values: Vec<i32> = descriptor.values().map(|value| value.number()).collect();
            if rng.chance(5) || values.is_empty() {
                Value::EnumNumber(*[999, -1, i32::MAX].get(rng.below(3)).unwrap_or(&999))
            } else {
                Value::EnumNumber(values[rng.below(values.len())])
            }
        }
        Kind::Message(descriptor) => Value::Message(message(&descriptor, rng, depth + 1)),
    }
}

/// A message with each field set or not, at random.
fn message(descriptor: &MessageDescriptor, rng: &mut Rng, depth: usize) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    if depth > 3 {
        return message;
    }
    for field in descriptor.fields() {
        if rng.chance(3) {
            continue;
        }
        let value = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                continue;
            };
            let value_field = entry.map_entry_value_field();
            let mut map = std::collections::HashMap::new();
            for _ in 0..rng.below(3) {
                map.insert(
                    MapKey::String(hostile_string(rng)),
                    scalar(&value_field, rng, depth),
                );
            }
            Value::Map(map)
        } else if field.is_list() {
            let count = if rng.chance(15) { 2000 } else { rng.below(4) };
            // Large lists of large messages would only test the size limit.
            let count = if matches!(field.kind(), Kind::Message(_)) && count > 3 {
                300
            } else {
                count
            };
            Value::List((0..count).map(|_| scalar(&field, rng, depth)).collect())
        } else {
            scalar(&field, rng, depth)
        };
        message.set_field(&field, value);
    }
    message
}

/// Raw bytes in, raw bytes out: the fuzzer speaks protobuf itself.
#[derive(Debug, Clone, Default)]
struct RawCodec;

#[derive(Debug, Clone, Default)]
struct RawCoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCoder;
    type Decoder = RawCoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawCoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCoder
    }
}

impl Encoder for RawCoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let mut bytes = vec![0; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

/// Sends one request; the status it ended with (OK for a served call).
async fn call(
    stack: &TestStack,
    method: &MethodDescriptor,
    body: Vec<u8>,
    tenant: &CallContext,
) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(stack.channel());
    if let Err(error) = grpc.ready().await {
        return tonic::Status::unknown(format!("channel not ready: {error}"));
    }
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    let request = tenant.request(body);
    if method.is_client_streaming() {
        let request = tonic::Request::from_parts(
            request.metadata().clone(),
            request.extensions().clone(),
            futures::stream::iter([request.into_inner()]),
        );
        return match grpc.client_streaming(request, path, RawCodec).await {
            Ok(_) => tonic::Status::ok(""),
            Err(status) => status,
        };
    }
    if method.is_server_streaming() {
        let answer = grpc.server_streaming(request, path, RawCodec).await;
        let mut stream = match answer {
            Ok(response) => response.into_inner(),
            Err(status) => return status,
        };
        // Watches may wait for changes: the first message, or a pause, will do.
        return match tokio::time::timeout(Duration::from_secs(1), stream.message()).await {
            Ok(Err(status)) => status,
            _ => tonic::Status::ok(""),
        };
    }
    match grpc.unary(request, path, RawCodec).await {
        Ok(_) => tonic::Status::ok(""),
        Err(status) => status,
    }
}

async fn every_rpc_survives_hostile_requests(backend: Backend) {
    let Some(stack) = TestStack::start(backend).await else {
        return;
    };
    let pool = DescriptorPool::decode(rebalancer_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let per_rpc: usize = std::env::var("FUZZ_PER_RPC")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) ^ 0x5eed);
    eprintln!("hostile_every_rpc {backend:?}: FUZZ_SEED={seed} FUZZ_PER_RPC={per_rpc}");
    let mut rng = Rng(seed);
    let tenant = stack.tenant("fuzz-a");
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut methods = 0;
    let mut sent = 0;
    for service in pool.services() {
        if !service.full_name().starts_with("rebalancer.") {
            continue;
        }
        for method in service.methods() {
            methods += 1;
            for _ in 0..per_rpc {
                let request = message(&method.input(), &mut rng, 0);
                let body = request.encode_to_vec();
                let status = call(&stack, &method, body, &tenant).await;
                sent += 1;
                *codes.entry(format!("{:?}", status.code())).or_default() += 1;
                let bad = match status.code() {
                    Code::Internal | Code::Unknown => true,
                    Code::InvalidArgument => status
                        .get_error_details()
                        .bad_request()
                        .is_none_or(|bad| bad.field_violations.is_empty()),
                    _ => false,
                };
                if bad && failures.len() < 20 {
                    failures.push(format!(
                        "{}: {:?} {:?}\n  request: {}",
                        method.full_name(),
                        status.code(),
                        status.message().chars().take(300).collect::<String>(),
                        format!("{request:?}").chars().take(600).collect::<String>()
                    ));
                }
            }
        }
    }
    eprintln!(
        "hostile_every_rpc {backend:?}: {sent} requests to {methods} RPCs; statuses {codes:?}"
    );
    assert!(methods >= 80, "only {methods} RPCs found");
    assert!(
        failures.is_empty(),
        "{} bad answers (seed {seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
    stack.stop().await;
}

#[tokio::test]
async fn every_rpc_survives_hostile_requests_sqlite() {
    every_rpc_survives_hostile_requests(Backend::Sqlite).await;
}

#[tokio::test]
async fn every_rpc_survives_hostile_requests_postgres() {
    every_rpc_survives_hostile_requests(Backend::Postgres).await;
}
