//! Checks every backend applies to what it stores for projections, so that each refuses and
//! stores exactly the same input.

use std::borrow::Cow;

use crate::error::ValidationError;

/// The longest projection name, in bytes.
pub const MAX_PROJECTION_NAME_LEN: usize = 255;

/// Checks a projection name: not blank, no NUL character, at most
/// [`MAX_PROJECTION_NAME_LEN`] bytes.
///
/// ```
/// use pupsourcing_core::projection::validate_projection_name;
/// assert!(validate_projection_name("order_totals").is_ok());
/// assert!(validate_projection_name(" ").is_err());
/// ```
pub fn validate_projection_name(name: &str) -> Result<(), ValidationError> {
    let field = "projection name";
    if name.trim().is_empty() {
        return Err(ValidationError::Empty { field });
    }
    if name.contains('\0') {
        return Err(ValidationError::NulCharacter { field });
    }
    if name.len() > MAX_PROJECTION_NAME_LEN {
        return Err(ValidationError::TooLong {
            field,
            len: name.len(),
            max: MAX_PROJECTION_NAME_LEN,
        });
    }
    Ok(())
}

/// An error text as every backend stores it: NUL characters (which PostgreSQL cannot store
/// in text) become U+FFFD, so recording an error never fails because of what it says.
pub fn storable_text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') { text.replace('\0', "\u{fffd}").into() } else { text.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_texts() {
        assert!(validate_projection_name("").is_err());
        assert!(validate_projection_name("a\0b").is_err());
        assert!(validate_projection_name(&"x".repeat(256)).is_err());
        assert!(validate_projection_name(&"x".repeat(255)).is_ok());
        assert_eq!(storable_text("a\0b"), "a\u{fffd}b");
        assert!(matches!(storable_text("ab"), Cow::Borrowed("ab")));
    }
}
