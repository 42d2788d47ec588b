//! The `--layout` of `shmchan tail`: parsing a record spec into fields at their C
//! offsets, and formatting each field's value.

use std::fmt::Write as _;

/// A primitive field type of a `--layout`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Prim {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
    Bool,
}

impl Prim {
    fn parse(s: &str) -> Option<Prim> {
        Some(match s {
            "u8" => Prim::U8,
            "u16" => Prim::U16,
            "u32" => Prim::U32,
            "u64" => Prim::U64,
            "i8" => Prim::I8,
            "i16" => Prim::I16,
            "i32" => Prim::I32,
            "i64" => Prim::I64,
            "f32" => Prim::F32,
            "f64" => Prim::F64,
            "bool" => Prim::Bool,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Prim::U8 | Prim::I8 | Prim::Bool => 1,
            Prim::U16 | Prim::I16 => 2,
            Prim::U32 | Prim::I32 | Prim::F32 => 4,
            Prim::U64 | Prim::I64 | Prim::F64 => 8,
        }
    }

    /// Formats the value at the start of `b` (at least `size()` bytes, native endian).
    fn format(self, b: &[u8]) -> String {
        fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
            let mut a = [0u8; N];
            a.copy_from_slice(&b[..N]);
            a
        }
        match self {
            Prim::U8 => b[0].to_string(),
            Prim::I8 => i8::from_ne_bytes(arr(b)).to_string(),
            Prim::Bool => match b[0] {
                0 => "false".into(),
                1 => "true".into(),
                x => format!("bool({x})"),
            },
            Prim::U16 => u16::from_ne_bytes(arr(b)).to_string(),
            Prim::I16 => i16::from_ne_bytes(arr(b)).to_string(),
            Prim::U32 => u32::from_ne_bytes(arr(b)).to_string(),
            Prim::I32 => i32::from_ne_bytes(arr(b)).to_string(),
            Prim::F32 => f32::from_ne_bytes(arr(b)).to_string(),
            Prim::U64 => u64::from_ne_bytes(arr(b)).to_string(),
            Prim::I64 => i64::from_ne_bytes(arr(b)).to_string(),
            Prim::F64 => f64::from_ne_bytes(arr(b)).to_string(),
        }
    }
}

/// One field of a `--layout`: a primitive or an array of them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    pub(crate) name: Option<String>,
    prim: Prim,
    /// `Some(n)` for `[prim; n]`.
    len: Option<usize>,
    offset: usize,
    /// The spelling, for the column header.
    pub(crate) spelled: String,
}

impl Field {
    fn size(&self) -> usize {
        self.prim.size() * self.len.unwrap_or(1)
    }

    pub(crate) fn hidden(&self) -> bool {
        self.name.as_deref().is_some_and(|n| n.starts_with('_'))
    }

    pub(crate) fn format(&self, record: &[u8]) -> String {
        let b = &record[self.offset..self.offset + self.size()];
        match self.len {
            None => self.prim.format(b),
            Some(_) if self.prim == Prim::U8 => bytes_text(b),
            Some(_) => {
                let items: Vec<String> = b
                    .chunks(self.prim.size())
                    .map(|c| self.prim.format(c))
                    .collect();
                format!("[{}]", items.join(","))
            }
        }
    }
}

/// A byte array as text if it is printable ASCII followed by NULs, else as hex.
fn bytes_text(b: &[u8]) -> String {
    let text_len = b.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
    let (text, pad) = b.split_at(text_len);
    if text.iter().all(|c| c.is_ascii_graphic() || *c == b' ') && pad.iter().all(|c| *c == 0) {
        format!("{:?}", String::from_utf8_lossy(text))
    } else {
        let mut s = String::from("0x");
        for c in b {
            let _ = write!(s, "{c:02x}");
        }
        s
    }
}

/// A `--layout`: fields at their C (`#[repr(C)]`) offsets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    pub(crate) fields: Vec<Field>,
}

impl Layout {
    /// Parses `spec` and checks it against records of `record_size` bytes.
    pub(crate) fn parse(spec: &str, record_size: usize) -> Result<Layout, String> {
        let mut fields = Vec::new();
        let mut offset = 0usize;
        let mut align = 1usize;
        let mut open_ended = false;
        let parts = split_top(spec);
        for (i, part) in parts.iter().enumerate() {
            let part = part.trim();
            if part == ".." {
                if i + 1 != parts.len() {
                    return Err("`..` must be the last field".into());
                }
                open_ended = true;
                continue;
            }
            let (name, ty) = match part.split_once(':') {
                Some((n, t)) => (Some(n.trim().to_owned()), t.trim()),
                None => (None, part),
            };
            let compact: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
            let (prim, len) =
                if let Some(inner) = compact.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                    let (t, n) = inner
                        .split_once(';')
                        .ok_or_else(|| format!("{ty:?}: an array is [TYPE; N]"))?;
                    let n: usize = n
                        .parse()
                        .map_err(|_| format!("{ty:?}: {n:?} is not a length"))?;
                    (Prim::parse(t).ok_or_else(|| unknown(t))?, Some(n))
                } else {
                    (
                        Prim::parse(&compact).ok_or_else(|| unknown(&compact))?,
                        None,
                    )
                };
            let a = prim.size();
            offset = offset.next_multiple_of(a);
            align = align.max(a);
            let field = Field {
                name,
                prim,
                len,
                offset,
                spelled: compact,
            };
            offset = offset
                .checked_add(field.size())
                .filter(|end| *end <= record_size)
                .ok_or_else(|| {
                    format!("the fields up to {part:?} take more than {record_size} bytes")
                })?;
            fields.push(field);
        }
        if fields.is_empty() {
            return Err("no fields".into());
        }
        let size = offset.next_multiple_of(align);
        if !open_ended && size != record_size {
            return Err(format!(
                "the layout is {size} bytes (end a shorter layout with `..`)"
            ));
        }
        Ok(Layout { fields })
    }
}

fn unknown(t: &str) -> String {
    format!("unknown type {t:?} (u8..u64, i8..i64, f32, f64, bool, [T; N])")
}

/// Splits at commas outside brackets.
fn split_top(spec: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in spec.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&spec[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_follow_c_rules() {
        let l = Layout::parse("ts:u64,bid:f64,ask:f64,u32,u32,sym:[u8;8]", 40).expect("fits");
        let offsets: Vec<usize> = l.fields.iter().map(|f| f.offset).collect();
        assert_eq!(offsets, [0, 8, 16, 24, 28, 32]);
        // u8 then u64: 7 bytes of padding, 16 in all.
        let l = Layout::parse("u8, u64", 16).expect("fits");
        assert_eq!(l.fields[1].offset, 8);
        assert!(Layout::parse("u8,u64", 9).is_err());
        assert!(Layout::parse("u32", 8).is_err());
        assert!(Layout::parse("u32,..", 8).is_ok());
        assert!(Layout::parse("..,u32", 8).is_err());
        assert!(Layout::parse("u24", 3).is_err());
        assert!(Layout::parse("[u8;x]", 3).is_err());
    }

    #[test]
    fn fields_print_as_numbers_and_text() {
        let l = Layout::parse("a:u32,b:f32,s:[u8;8],_pad:u64,v:[u16;2]", 32).expect("fits");
        let mut rec = vec![0u8; 32];
        rec[..4].copy_from_slice(&7u32.to_ne_bytes());
        rec[4..8].copy_from_slice(&1.5f32.to_ne_bytes());
        rec[8..12].copy_from_slice(b"ACME");
        rec[24..26].copy_from_slice(&1u16.to_ne_bytes());
        rec[26..28].copy_from_slice(&2u16.to_ne_bytes());
        let cells: Vec<String> = l
            .fields
            .iter()
            .filter(|f| !f.hidden())
            .map(|f| f.format(&rec))
            .collect();
        assert_eq!(cells, ["7", "1.5", "\"ACME\"", "[1,2]"]);
        assert_eq!(bytes_text(&[1, 2]), "0x0102");
    }
}
