//! A parsed line and the iterators over its tags and fields.
//!
//! Validation finds every token boundary, so a [`Line`] records what it found for the common
//! case: the boundaries of the first [`TAGS_INDEXED_MAX`] tags and the parsed value of the
//! first field. Iterating those costs no scanning. Anything beyond (a ninth tag, a second
//! field) is tokenized again from the validated line text by the same scanner that validated
//! it, so it cannot fail. The index has a fixed size, so a `Line` never allocates.
//!
//! Why not re-scan everything? On the ClusterCockpit workload (4 tags, 1 field) the second
//! scan cost about a third of the parse time.

use crate::number::{self, RawValue};
use crate::scan::{self, Stop};
use std::borrow::Cow;
use std::iter::FusedIterator;

/// How many tags a [`Line`] indexes during validation. ClusterCockpit lines carry up to six
/// (`cluster`, `hostname`, `type`, `type-id`, `stype`, `stype-id`).
pub(crate) const TAGS_INDEXED_MAX: usize = 8;

// The escape flags of the indexed tags (two bits per tag) must fit `TagIndex::escaped`.
const _: () = assert!(2 * TAGS_INDEXED_MAX <= u16::BITS as usize);
// `Line` is moved on every `Parser::next`; above 128 bytes the moves become `memcpy` calls,
// which cost 5% of the parse time.
const _: () = assert!(std::mem::size_of::<Line<'static>>() <= 128);

/// Lengths of the first tags of a line, recorded during validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TagIndex {
    /// Raw (escaped) byte lengths `[key, value]` of the first `len` tags. Tag `i + 1` starts
    /// two bytes (`=` and `,`) after tag `i`'s value.
    lengths: [[u8; 2]; TAGS_INDEXED_MAX],
    /// Number of entries of `lengths` in use.
    len: u8,
    /// Bit `2i` is set if key `i` contains escapes, bit `2i + 1` if value `i` does.
    escaped: u16,
    /// Whether tags follow the indexed ones: the line has more than `TAGS_INDEXED_MAX` tags,
    /// or a name longer than 255 bytes ended the index early.
    more: bool,
}

impl TagIndex {
    /// Records one tag; once the index is full (or a length does not fit a `u8`), marks that
    /// more tags follow instead.
    #[inline]
    pub(crate) fn push(
        &mut self,
        key_len: usize,
        key_escaped: bool,
        value_len: usize,
        value_escaped: bool,
    ) {
        let slot = usize::from(self.len);
        let (Some(entry), Ok(key_len), Ok(value_len), false) = (
            self.lengths.get_mut(slot),
            u8::try_from(key_len),
            u8::try_from(value_len),
            self.more,
        ) else {
            self.more = true;
            return;
        };
        *entry = [key_len, value_len];
        self.escaped |= (u16::from(key_escaped) | u16::from(value_escaped) << 1) << (2 * slot);
        self.len += 1;
    }

    /// The indexed tags as `(key_len, key_escaped, value_len, value_escaped)`.
    #[inline]
    pub(crate) fn entries(&self) -> impl Iterator<Item = (usize, bool, usize, bool)> + '_ {
        let lengths = self
            .lengths
            .get(..usize::from(self.len))
            .unwrap_or_default();
        lengths
            .iter()
            .enumerate()
            .map(|(slot, &[key_len, value_len])| {
                (
                    usize::from(key_len),
                    self.escaped & (1 << (2 * slot)) != 0,
                    usize::from(value_len),
                    self.escaped & (2 << (2 * slot)) != 0,
                )
            })
    }
}

/// A field value without its borrowed text, small enough to keep in a [`Line`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum IndexedValue {
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    /// The content lies between the quotes right after the key's `=` and before the value
    /// end.
    String {
        escaped: bool,
    },
}

impl IndexedValue {
    pub(crate) fn new(value: RawValue<'_>) -> Self {
        match value {
            RawValue::Float(v) => Self::Float(v),
            RawValue::Int(v) => Self::Int(v),
            RawValue::UInt(v) => Self::UInt(v),
            RawValue::Bool(v) => Self::Bool(v),
            RawValue::String { escaped, .. } => Self::String { escaped },
        }
    }
}

/// The first field of a line, parsed during validation. Positions are indices into the line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FirstField {
    /// Index of the `=` after the key.
    pub(crate) key_end: u32,
    /// Index just past the value: a `,` if more fields follow, else a space or the end.
    pub(crate) value_end: u32,
    pub(crate) key_escaped: bool,
    pub(crate) value: IndexedValue,
}

/// One successfully parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    /// 1-based physical line number (blank and comment lines count).
    pub number: u64,
    /// The measurement name; borrowed from the input unless it contained escapes.
    pub measurement: Cow<'a, str>,
    /// The timestamp as written, without unit conversion; `None` if the line has none.
    pub timestamp: Option<i64>,
    /// The whole line, without terminator. Every token in it passed validation. At most
    /// `u32::MAX` bytes long, so positions fit a `u32`.
    text: &'a str,
    /// Index of the first tag key; equal to `fields_start` if the line has no tags. The tag
    /// set ends at the first unescaped space after it.
    tags_start: u32,
    /// Index of the first field key.
    fields_start: u32,
    tags: TagIndex,
    first_field: FirstField,
}

impl<'a> Line<'a> {
    /// Assembles a validated line. Positions must fit a `u32` (the parser caps line length).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        number: u64,
        measurement: Cow<'a, str>,
        text: &'a str,
        tags_start: Option<usize>,
        tags: TagIndex,
        fields_start: usize,
        first_field: FirstField,
        timestamp: Option<i64>,
    ) -> Self {
        let fields_start = u32::try_from(fields_start).unwrap_or(u32::MAX);
        let tags_start = tags_start
            .and_then(|tags_start| u32::try_from(tags_start).ok())
            .unwrap_or(fields_start);
        debug_assert!(fields_start < first_field.key_end);
        debug_assert!(first_field.value_end as usize <= text.len());
        debug_assert!(tags_start <= fields_start);
        debug_assert!(tags_start < fields_start || (tags.len == 0 && !tags.more));
        Self {
            number,
            measurement,
            timestamp,
            text,
            tags_start,
            fields_start,
            tags,
            first_field,
        }
    }

    /// The tags in line order. Keys and values are borrowed unless they contained escapes.
    /// Duplicate keys are yielded as written.
    #[inline]
    pub fn tags(&self) -> Tags<'a> {
        Tags {
            text: self.text,
            index: self.tags,
            next_indexed: 0,
            pos: self.tags_start as usize,
            done: self.tags_start == self.fields_start,
        }
    }

    /// The fields in line order (at least one). Keys and string values are borrowed unless
    /// they contained escapes. Duplicate keys are yielded as written.
    #[inline]
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            text: self.text,
            first: Some(self.first_field),
            pos: self.fields_start as usize,
            done: false,
        }
    }
}

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// A number without suffix: `1`, `-1.5`, `1e3`, `.5`. Always finite.
    Float(f64),
    /// A number with the `i` suffix: `12i`.
    Int(i64),
    /// A number with the `u` suffix: `12u`.
    UInt(u64),
    /// `t`, `T`, `true`, `True`, `TRUE`, `f`, `F`, `false`, `False` or `FALSE`.
    Bool(bool),
    /// A double-quoted string, unescaped; borrowed unless it contained `\"` or `\\`.
    String(Cow<'a, str>),
}

/// Iterator over the tags of a [`Line`]: `(key, value)` pairs in line order.
#[derive(Debug, Clone)]
pub struct Tags<'a> {
    /// The whole line.
    text: &'a str,
    index: TagIndex,
    /// Next entry of `index` to yield.
    next_indexed: u8,
    /// Index in `text` of the next tag key, once `index` is exhausted.
    pos: usize,
    done: bool,
}

impl<'a> Tags<'a> {
    /// Yields an indexed tag.
    #[inline]
    fn indexed(&mut self, slot: usize) -> Option<(Cow<'a, str>, Cow<'a, str>)> {
        let [key_len, value_len] = *self.index.lengths.get(slot)?;
        let key_start = self.pos;
        let key_end = key_start + usize::from(key_len);
        let value_end = key_end + 1 + usize::from(value_len);
        self.pos = value_end + 1;
        let key_escaped = self.index.escaped & (1 << (2 * slot)) != 0;
        let value_escaped = self.index.escaped & (2 << (2 * slot)) != 0;
        Some((
            scan::name_cow(self.text, key_start, key_end, key_escaped, scan::TAG_KEY)?,
            scan::name_cow(
                self.text,
                key_end + 1,
                value_end,
                value_escaped,
                scan::TAG_VALUE,
            )?,
        ))
    }

    /// Tokenizes the tag at `pos` (past the index).
    #[inline]
    fn scanned(&mut self) -> Option<(Cow<'a, str>, Cow<'a, str>)> {
        let bytes = self.text.as_bytes();
        let key = scan::scan_name(bytes, self.pos, scan::TAG_KEY);
        if key.stop != Stop::Delimiter(b'=') {
            return None;
        }
        let value = scan::scan_name(bytes, key.end + 1, scan::TAG_VALUE);
        match value.stop {
            Stop::Delimiter(b',') => self.pos = value.end + 1,
            Stop::Delimiter(b' ') => self.done = true,
            _ => return None,
        }
        Some((
            key.cow(self.text, scan::TAG_KEY)?,
            value.cow(self.text, scan::TAG_VALUE)?,
        ))
    }
}

impl<'a> Iterator for Tags<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let tag = if self.next_indexed < self.index.len {
            let slot = usize::from(self.next_indexed);
            self.next_indexed += 1;
            if self.next_indexed == self.index.len && !self.index.more {
                self.done = true;
            }
            self.indexed(slot)
        } else {
            self.scanned()
        };
        debug_assert!(tag.is_some(), "validated tag set failed to re-scan");
        if tag.is_none() {
            self.done = true;
        }
        tag
    }
}

impl FusedIterator for Tags<'_> {}

/// Iterator over the fields of a [`Line`]: `(key, value)` pairs in line order.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    /// The whole line.
    text: &'a str,
    /// The first field, until yielded.
    first: Option<FirstField>,
    /// Index in `text` of the next field key.
    pos: usize,
    done: bool,
}

impl<'a> Fields<'a> {
    /// Yields the field parsed during validation.
    #[inline]
    fn indexed(&mut self, first: FirstField) -> Option<(Cow<'a, str>, FieldValue<'a>)> {
        let key_end = first.key_end as usize;
        let value_end = first.value_end as usize;
        let key = scan::name_cow(
            self.text,
            self.pos,
            key_end,
            first.key_escaped,
            scan::FIELD_KEY,
        )?;
        let value = match first.value {
            IndexedValue::Float(v) => FieldValue::Float(v),
            IndexedValue::Int(v) => FieldValue::Int(v),
            IndexedValue::UInt(v) => FieldValue::UInt(v),
            IndexedValue::Bool(v) => FieldValue::Bool(v),
            IndexedValue::String { escaped } => {
                // Skip `="` before the content and `"` after it.
                let raw = self.text.get(key_end + 2..value_end.checked_sub(1)?)?;
                RawValue::String { raw, escaped }.into_field_value()
            }
        };
        self.advance(value_end);
        Some((key, value))
    }

    /// Tokenizes the field at `pos`.
    #[inline]
    fn scanned(&mut self) -> Option<(Cow<'a, str>, FieldValue<'a>)> {
        let bytes = self.text.as_bytes();
        let key = scan::scan_name(bytes, self.pos, scan::FIELD_KEY);
        if key.stop != Stop::Delimiter(b'=') {
            return None;
        }
        let (value, end) = number::parse_field_value(bytes, self.text, key.end + 1).ok()?;
        self.advance(end);
        Some((
            key.cow(self.text, scan::FIELD_KEY)?,
            value.into_field_value(),
        ))
    }

    /// Moves past a value ending at `end`: a `,` leads to the next field; a space (before
    /// the timestamp) or the end of the line ends the field set.
    #[inline]
    fn advance(&mut self, end: usize) {
        if self.text.as_bytes().get(end) == Some(&b',') {
            self.pos = end + 1;
        } else {
            self.done = true;
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (Cow<'a, str>, FieldValue<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let field = match self.first.take() {
            Some(first) => self.indexed(first),
            None => self.scanned(),
        };
        debug_assert!(field.is_some(), "validated field set failed to re-scan");
        if field.is_none() {
            self.done = true;
        }
        field
    }
}

impl FusedIterator for Fields<'_> {}
