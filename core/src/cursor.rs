//! Page cursors: where the next page of a keyset list starts (the last row's sort key and
//! id), as an opaque token. Clients pass back what they were given; they cannot build or
//! read one, so the list's ordering stays the server's to change.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::AppError;

/// The token of a position given by whole numbers (a sort key, then an id).
pub fn encode(parts: &[i64]) -> String {
    let bytes: Vec<u8> = parts.iter().flat_map(|part| part.to_be_bytes()).collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The position a token of [`encode`] holds: exactly `N` numbers, or a clear error.
pub fn decode<const N: usize>(token: &str) -> Result<[i64; N], AppError> {
    let invalid =
        || AppError::BadRequest("The page cursor is not valid: pass the `next` of a previous page.".to_owned());
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| invalid())?;
    if bytes.len() != N * 8 {
        return Err(invalid());
    }
    let mut parts = [0i64; N];
    for (part, chunk) in parts.iter_mut().zip(bytes.chunks_exact(8)) {
        *part = i64::from_be_bytes(chunk.try_into().map_err(|_| invalid())?);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_made_up_one_is_refused() {
        let token = encode(&[1_764_512_345_678_901, 42]);
        assert!(!token.contains('.') && !token.contains("42"), "opaque: {token}");
        assert_eq!(decode::<2>(&token).ok(), Some([1_764_512_345_678_901, 42]));
        for made_up in ["1764512345678901.42", "", "AAAA", &encode(&[1])] {
            assert!(decode::<2>(made_up).is_err(), "{made_up}");
        }
    }
}
