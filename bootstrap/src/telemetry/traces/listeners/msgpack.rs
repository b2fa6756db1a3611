//! Decoding the trace payloads tracers send to a trace agent: `/v0.4/traces` (an array of
//! traces, each an array of span maps) and `/v0.5/traces` (a string table, then traces whose
//! spans are 12-element arrays naming strings by index). Bounded: nesting depth, and lengths
//! that cannot exceed what the payload holds, so garbage is an error and never a huge
//! allocation or a panic.
use std::collections::BTreeMap;

use rmp::Marker;

use crate::telemetry::traces::span::{Span, TraceId};

/// Deeper than any span payload nests (payload, trace, span, meta_struct, span links).
const MAX_DEPTH: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the payload ends in the middle of a value")]
    Truncated,
    #[error("the payload nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the payload has a msgpack type this endpoint does not take (marker {0:#04x})")]
    UnsupportedMarker(u8),
    #[error("the payload is not a {0} trace payload: {1}")]
    Shape(&'static str, &'static str),
    #[error("{0} bytes follow the payload")]
    Trailing(usize),
}

/// A decoded msgpack value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

impl Value {
    fn as_u64(&self) -> Option<u64> {
        match self {
            Value::UInt(v) => Some(*v),
            Value::Int(v) => Some(*v as u64),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Value::UInt(v) => i64::try_from(*v).ok(),
            Value::Int(v) => Some(*v),
            Value::Float(v) => Some(*v as i64),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::UInt(v) => Some(*v as f64),
            Value::Int(v) => Some(*v as f64),
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Reads one whole value from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    let value = reader.value(0)?;
    match bytes.len() - reader.at {
        0 => Ok(value),
        left => Err(DecodeError::Trailing(left)),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(DecodeError::Truncated)?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A declared element count: each element takes at least one byte, so a count larger than
    /// what is left is a lie.
    fn count(&mut self, n: usize, per_element: usize) -> Result<usize, DecodeError> {
        let count = self.be(n)? as usize;
        if count.saturating_mul(per_element) > self.bytes.len() - self.at {
            return Err(DecodeError::Truncated);
        }
        Ok(count)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let byte = self.take(1)?[0];
        Ok(match Marker::from_u8(byte) {
            Marker::FixPos(v) => Value::UInt(u64::from(v)),
            Marker::FixNeg(v) => Value::Int(i64::from(v)),
            Marker::Null => Value::Nil,
            Marker::True => Value::Bool(true),
            Marker::False => Value::Bool(false),
            Marker::U8 => Value::UInt(self.be(1)?),
            Marker::U16 => Value::UInt(self.be(2)?),
            Marker::U32 => Value::UInt(self.be(4)?),
            Marker::U64 => Value::UInt(self.be(8)?),
            Marker::I8 => Value::Int(i64::from(self.be(1)? as u8 as i8)),
            Marker::I16 => Value::Int(i64::from(self.be(2)? as u16 as i16)),
            Marker::I32 => Value::Int(i64::from(self.be(4)? as u32 as i32)),
            Marker::I64 => Value::Int(self.be(8)? as i64),
            Marker::F32 => Value::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            Marker::F64 => Value::Float(f64::from_bits(self.be(8)?)),
            Marker::FixStr(n) => self.string(usize::from(n))?,
            Marker::Str8 => self.sized_string(1)?,
            Marker::Str16 => self.sized_string(2)?,
            Marker::Str32 => self.sized_string(4)?,
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let width = match Marker::from_u8(byte) {
                    Marker::Bin8 => 1,
                    Marker::Bin16 => 2,
                    _ => 4,
                };
                let len = self.count(width, 1)?;
                Value::Bin(self.take(len)?.to_vec())
            }
            Marker::FixArray(n) => self.array(usize::from(n), depth)?,
            Marker::Array16 => {
                let n = self.count(2, 1)?;
                self.array(n, depth)?
            }
            Marker::Array32 => {
                let n = self.count(4, 1)?;
                self.array(n, depth)?
            }
            Marker::FixMap(n) => self.map(usize::from(n), depth)?,
            Marker::Map16 => {
                let n = self.count(2, 2)?;
                self.map(n, depth)?
            }
            Marker::Map32 => {
                let n = self.count(4, 2)?;
                self.map(n, depth)?
            }
            _ => return Err(DecodeError::UnsupportedMarker(byte)),
        })
    }

    fn sized_string(&mut self, width: usize) -> Result<Value, DecodeError> {
        let len = self.count(width, 1)?;
        self.string(len)
    }

    fn string(&mut self, len: usize) -> Result<Value, DecodeError> {
        // Tracers send UTF-8; a stray byte is replaced rather than failing the whole payload.
        Ok(Value::Str(String::from_utf8_lossy(self.take(len)?).into_owned()))
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut items = Vec::with_capacity(n.min(self.bytes.len() - self.at));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut entries = Vec::with_capacity(n.min(self.bytes.len() - self.at));
        for _ in 0..n {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// `/v0.4/traces`: `[[{span}, ...], ...]`.
pub fn decode_v04(bytes: &[u8]) -> Result<Vec<Vec<Span>>, DecodeError> {
    const SHAPE: &str = "v0.4";
    let Value::Array(traces) = decode(bytes)? else {
        return Err(DecodeError::Shape(SHAPE, "not an array of traces"));
    };
    traces
        .into_iter()
        .map(|trace| {
            let Value::Array(spans) = trace else {
                return Err(DecodeError::Shape(SHAPE, "a trace is not an array of spans"));
            };
            spans
                .into_iter()
                .map(|span| match span {
                    Value::Map(fields) => Ok(span_from_v04(fields)),
                    _ => Err(DecodeError::Shape(SHAPE, "a span is not a map")),
                })
                .collect()
        })
        .collect()
}

fn span_from_v04(fields: Vec<(Value, Value)>) -> Span {
    let mut span = Span::new("", TraceId::default(), 0, 0);
    for (key, value) in fields {
        let Some(key) = key.as_str() else { continue };
        match key {
            "trace_id" => span.trace_id.low = value.as_u64().unwrap_or_default(),
            "span_id" => span.span_id = value.as_u64().unwrap_or_default(),
            "parent_id" => span.parent_id = value.as_u64().unwrap_or_default(),
            "name" => span.name = string(value),
            "service" => span.service = string(value),
            "resource" => span.resource = string(value),
            "type" => span.span_type = string(value),
            "start" => span.start_ns = value.as_i64().unwrap_or_default(),
            "duration" => span.duration_ns = value.as_i64().unwrap_or_default(),
            "error" => span.error = value.as_i64().unwrap_or_default() as i32,
            "meta" => span.meta = string_map(value, |v| v.as_str().map(str::to_owned)),
            "metrics" => span.metrics = string_map(value, Value::as_f64),
            _ => {}
        }
    }
    apply_tid(&mut span);
    span
}

/// `/v0.5/traces`: `[[string table], [[[12 fields], ...], ...]]`.
pub fn decode_v05(bytes: &[u8]) -> Result<Vec<Vec<Span>>, DecodeError> {
    const SHAPE: &str = "v0.5";
    let Value::Array(mut payload) = decode(bytes)? else {
        return Err(DecodeError::Shape(SHAPE, "not a [strings, traces] array"));
    };
    if payload.len() != 2 {
        return Err(DecodeError::Shape(SHAPE, "not a [strings, traces] array"));
    }
    let traces = payload.pop().unwrap_or(Value::Nil);
    let Some(Value::Array(strings)) = payload.pop() else {
        return Err(DecodeError::Shape(SHAPE, "the string table is not an array"));
    };
    let strings: Vec<String> = strings.into_iter().map(string).collect();
    let Value::Array(traces) = traces else {
        return Err(DecodeError::Shape(SHAPE, "the traces are not an array"));
    };
    let text = |value: &Value| -> Result<String, DecodeError> {
        value
            .as_u64()
            .and_then(|index| strings.get(index as usize))
            .cloned()
            .ok_or(DecodeError::Shape(SHAPE, "a string index is outside the string table"))
    };
    traces
        .into_iter()
        .map(|trace| {
            let Value::Array(spans) = trace else {
                return Err(DecodeError::Shape(SHAPE, "a trace is not an array of spans"));
            };
            spans
                .into_iter()
                .map(|span| {
                    let fields = match span {
                        Value::Array(fields) if fields.len() == 12 => fields,
                        _ => return Err(DecodeError::Shape(SHAPE, "a span is not a 12-element array")),
                    };
                    let number = |i: usize| fields[i].as_u64().unwrap_or_default();
                    let mut span = Span::new(text(&fields[1])?, TraceId::new(0, number(3)), number(4), number(5));
                    span.service = text(&fields[0])?;
                    span.resource = text(&fields[2])?;
                    span.start_ns = fields[6].as_i64().unwrap_or_default();
                    span.duration_ns = fields[7].as_i64().unwrap_or_default();
                    span.error = fields[8].as_i64().unwrap_or_default() as i32;
                    if let Value::Map(meta) = &fields[9] {
                        for (k, v) in meta {
                            span.meta.insert(text(k)?, text(v)?);
                        }
                    }
                    if let Value::Map(metrics) = &fields[10] {
                        for (k, v) in metrics {
                            span.metrics.insert(text(k)?, v.as_f64().unwrap_or_default());
                        }
                    }
                    span.span_type = text(&fields[11])?;
                    apply_tid(&mut span);
                    Ok(span)
                })
                .collect()
        })
        .collect()
}

fn string(value: Value) -> String {
    match value {
        Value::Str(s) => s,
        _ => String::new(),
    }
}

fn string_map<T>(value: Value, convert: impl Fn(&Value) -> Option<T>) -> BTreeMap<String, T> {
    let Value::Map(entries) = value else { return BTreeMap::new() };
    entries.into_iter().filter_map(|(k, v)| Some((string(k), convert(&v)?))).collect()
}

/// The high half of a 128-bit trace id travels as `_dd.p.tid`.
fn apply_tid(span: &mut Span) {
    if let Some(high) = span.meta.get("_dd.p.tid").and_then(|tid| u64::from_str_radix(tid, 16).ok()) {
        span.trace_id.high = high;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::trace_agent::encode_v04;

    #[test]
    fn v04_round_trips_our_own_encoding() {
        let mut span = Span::new("child.op", TraceId::new(0x6b05765000000000, 77), 5, 0);
        span.service = "svc".into();
        span.resource = "res".into();
        span.span_type = "web".into();
        span.start_ns = 1_700_000_000_000_000_000;
        span.duration_ns = 1234;
        span.error = 1;
        span.set_meta("_dd.p.tid", "6b05765000000000");
        span.set_meta("k", "v");
        span.set_metric("m", 2.5);
        let decoded = decode_v04(&encode_v04(&[vec![span.clone()]])).unwrap();
        assert_eq!(decoded.len(), 1);
        let got = &decoded[0][0];
        assert_eq!(got.trace_id, span.trace_id);
        assert_eq!((got.span_id, got.parent_id), (5, 0));
        assert_eq!(
            (got.name.as_str(), got.service.as_str(), got.resource.as_str()),
            ("child.op", "svc", "res")
        );
        assert_eq!(got.span_type, "web");
        assert_eq!((got.start_ns, got.duration_ns, got.error), (span.start_ns, 1234, 1));
        assert_eq!(got.meta["k"], "v");
        assert_eq!(got.metrics["m"], 2.5);
    }

    /// A v0.5 payload written by hand with rmp, as ddtrace lays it out.
    fn v05_payload() -> Vec<u8> {
        let mut out = Vec::new();
        let strings = ["svc", "op", "res", "", "k", "v", "m", "web"];
        rmp::encode::write_array_len(&mut out, 2).unwrap();
        rmp::encode::write_array_len(&mut out, strings.len() as u32).unwrap();
        for s in strings {
            rmp::encode::write_str(&mut out, s).unwrap();
        }
        rmp::encode::write_array_len(&mut out, 1).unwrap(); // traces
        rmp::encode::write_array_len(&mut out, 1).unwrap(); // one trace
        rmp::encode::write_array_len(&mut out, 12).unwrap(); // one span
        for index in [0u64, 1, 2] {
            rmp::encode::write_uint(&mut out, index).unwrap();
        }
        rmp::encode::write_uint(&mut out, u64::MAX - 1).unwrap(); // trace id
        rmp::encode::write_uint(&mut out, 9).unwrap();
        rmp::encode::write_uint(&mut out, 0).unwrap();
        rmp::encode::write_sint(&mut out, 1_700_000_000_000_000_000).unwrap();
        rmp::encode::write_sint(&mut out, 500).unwrap();
        rmp::encode::write_sint(&mut out, 0).unwrap();
        rmp::encode::write_map_len(&mut out, 1).unwrap();
        rmp::encode::write_uint(&mut out, 4).unwrap();
        rmp::encode::write_uint(&mut out, 5).unwrap();
        rmp::encode::write_map_len(&mut out, 1).unwrap();
        rmp::encode::write_uint(&mut out, 6).unwrap();
        rmp::encode::write_f64(&mut out, 1.5).unwrap();
        rmp::encode::write_uint(&mut out, 7).unwrap();
        out
    }

    #[test]
    fn v05_names_strings_by_index() {
        let decoded = decode_v05(&v05_payload()).unwrap();
        let span = &decoded[0][0];
        assert_eq!(
            (span.service.as_str(), span.name.as_str(), span.resource.as_str()),
            ("svc", "op", "res")
        );
        assert_eq!(span.trace_id.low, u64::MAX - 1);
        assert_eq!((span.span_id, span.parent_id, span.duration_ns), (9, 0, 500));
        assert_eq!(span.meta["k"], "v");
        assert_eq!(span.metrics["m"], 1.5);
        assert_eq!(span.span_type, "web");
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        assert_eq!(decode(b""), Err(DecodeError::Truncated));
        // An array32 claiming four billion elements in a 5-byte payload.
        assert_eq!(decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0xc1]), Err(DecodeError::UnsupportedMarker(0xc1)));
        assert_eq!(decode(&[0x91; 40]), Err(DecodeError::TooDeep));
        assert_eq!(decode(&[0x01, 0x02]), Err(DecodeError::Trailing(1)));
        assert!(matches!(decode_v04(&[0x01]), Err(DecodeError::Shape("v0.4", _))));
        assert!(matches!(decode_v05(&[0x90]), Err(DecodeError::Shape("v0.5", _))));
        let mut bad_index = v05_payload();
        // The last byte is the span type's string index: point it past the table.
        *bad_index.last_mut().unwrap() = 0x7f;
        assert!(matches!(decode_v05(&bad_index), Err(DecodeError::Shape("v0.5", _))));
        for len in 0..v05_payload().len() {
            let _ = decode_v05(&v05_payload()[..len]);
        }
    }
}
