//! What the fuzz targets share: the text format their header inputs use, so a seed is a
//! readable file (`name: value` per line) and libFuzzer's mutations stay meaningful.

/// Header pairs from `name: value` lines, as raw bytes (neither side need be valid UTF-8 or a
/// valid HTTP token: the targets must cope with whatever arrives). A line without `:` is a
/// name with an empty value.
pub fn header_lines(data: &[u8]) -> Vec<(&[u8], &[u8])> {
    data.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match line.iter().position(|&b| b == b':') {
                Some(colon) => (&line[..colon], trim_start(&line[colon + 1..])),
                None => (line, &line[line.len()..]),
            }
        })
        .collect()
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    &bytes[start..]
}

/// An `http::HeaderMap` of the pairs HTTP can carry (hyper refuses the others before the
/// bootstrap sees them), appended so repeated names stay repeated.
pub fn header_map(data: &[u8]) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (name, value) in header_lines(data) {
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(name), http::HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    headers
}
