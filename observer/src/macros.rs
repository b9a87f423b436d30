//! The crate's two table generators, so every enum↔name and code↔name mapping is written once:
//!
//! - [`named_enum!`]: a closed set of facts (`Evidence`, `CertStatus`, ...) with their contract names:
//!   the enum, `ALL`, `as_str`, and `Serialize` as that name (so events and metric labels cannot
//!   disagree).
//! - [`enum_with_unknown!`] (after smoltcp's macro of that name): a wire code space (alert
//!   descriptions, signature schemes, ...) where unknown values must be kept as numbers: the enum
//!   with an `Unknown(n)` variant, `From` both ways, and `name()` (None for unknown codes, so the
//!   caller decides how the number is written).

/// A closed enum with a contract name per variant.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            #[allow(dead_code)]
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name as written in events, reports and metric labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

/// A wire code space: named codes, everything else kept as `Unknown(code)`.
macro_rules! enum_with_unknown {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident($ty:ty) {
            $($(#[$vmeta:meta])* $variant:ident = $code:literal => $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)*
            Unknown($ty),
        }

        impl From<$ty> for $name {
            fn from(v: $ty) -> Self {
                match v {
                    $($code => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $ty {
            fn from(v: $name) -> $ty {
                match v {
                    $($name::$variant => $code,)*
                    $name::Unknown(other) => other,
                }
            }
        }

        impl $name {
            /// The registered name; None for a code we do not know.
            #[allow(dead_code)]
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $($name::$variant => Some($text),)*
                    $name::Unknown(_) => None,
                }
            }
        }
    };
}
