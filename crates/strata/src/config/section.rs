//! The shared parsing: reading a configuration file and its `<name>-file` includes, and
//! [`Section`], the walker every section parser uses, so that every error names the file,
//! the section path and the key in the same way.

use std::borrow::Cow;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use strata_store::FREQUENCY_S;

use super::ConfigError;
use super::duration::parse_go_duration;
use super::size::parse_size;

/// Longest piece of configuration text (a key, a value) echoed back in an error message.
const ECHO_BYTES_MAX: usize = 100;

/// Largest configuration (or `<name>-file`) file read: 16 MiB. Real files are a few KiB even
/// with thousands of metrics; the cap only stops a wrong path (a device, a log file) from
/// being read into memory whole. Tests shrink it to reach it cheaply.
pub const CONFIG_FILE_BYTES_MAX: u64 = if cfg!(test) { 64 << 10 } else { 16 << 20 };

/// Cuts `text` to at most `bytes_max` bytes (on a char boundary), marking the cut, so that
/// error messages stay readable when a file holds something huge.
pub(super) fn clip(text: &str, bytes_max: usize) -> String {
    if text.len() <= bytes_max {
        return text.to_owned();
    }
    let mut end = bytes_max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Reads a whole file as UTF-8, refusing files over [`CONFIG_FILE_BYTES_MAX`].
pub(super) fn read_limited(path: &Path) -> io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(CONFIG_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > CONFIG_FILE_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {CONFIG_FILE_BYTES_MAX} bytes; is this a configuration file?"),
        ));
    }
    Ok(text)
}

/// Parses JSON text, reporting syntax errors with file, line and column.
pub(super) fn parse_json(text: &str, file: &Path) -> Result<Value, ConfigError> {
    serde_json::from_str(text).map_err(|error| {
        let (line, column) = (error.line(), error.column());
        // serde_json appends " at line L column C"; it is already in the prefix.
        let full = error.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        ConfigError::Json {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    })
}

/// A section's JSON value and the file it came from: the configuration file itself, or
/// the file named by its `<name>-file` key.
pub(super) struct Loaded<'a> {
    pub(super) value: Cow<'a, Value>,
    pub(super) file: Cow<'a, Path>,
}

/// Finds section `name` inline or through `file_key` (`<name>-file`).
pub(super) fn load_section<'a>(
    top: &Section<'a>,
    name: &str,
    file_key: &str,
) -> Result<Option<Loaded<'a>>, ConfigError> {
    let inline = top.get(name);
    let indirect = top.string(file_key)?;
    match (inline, indirect) {
        (Some(_), Some(_)) => Err(ConfigError::DuplicateSection {
            file: top.file.to_owned(),
            section: name.to_owned(),
        }),
        (Some(value), None) => Ok(Some(Loaded {
            value: Cow::Borrowed(value),
            file: Cow::Borrowed(top.file),
        })),
        (None, Some("")) => Err(top.invalid(file_key, "must name a JSON file, found \"\"")),
        (None, Some(given)) => {
            let path = resolve_include(top.file, Path::new(given));
            let text = read_limited(&path).map_err(|error| ConfigError::Include {
                file: top.file.to_owned(),
                key: file_key.to_owned(),
                path: path.clone(),
                error,
            })?;
            let value = parse_json(&text, &path)?;
            Ok(Some(Loaded {
                value: Cow::Owned(value),
                file: Cow::Owned(path),
            }))
        }
        (None, None) => Ok(None),
    }
}

/// Resolves a `<name>-file` path: absolute as given; relative against the configuration
/// file's directory, or, if nothing exists there but something exists relative to the
/// working directory, against the working directory (cc-metric-store's behaviour).
///
/// When neither exists the path next to the configuration file is returned, so that the
/// error names the place Strata looks first.
fn resolve_include(config_file: &Path, given: &Path) -> PathBuf {
    if given.is_absolute() {
        return given.to_owned();
    }
    let beside = match config_file.parent() {
        Some(directory) => directory.join(given),
        None => given.to_owned(),
    };
    if !beside.exists() && given.exists() {
        return given.to_owned();
    }
    beside
}

/// One JSON object of the configuration being walked, with the file it came from and its
/// path in the configuration, so that every error can say where it is.
pub(super) struct Section<'a> {
    pub(super) file: &'a Path,
    /// `""` for the top level, otherwise e.g. `metric-store.wal`.
    pub(super) path: String,
    pub(super) map: &'a Map<String, Value>,
}

impl<'a> Section<'a> {
    /// Checks that `value` is an object whose keys are all in `keys`.
    pub(super) fn new(
        file: &'a Path,
        path: String,
        value: &'a Value,
        keys: &'static [&'static str],
    ) -> Result<Self, ConfigError> {
        let map = object(file, &path, value)?;
        if let Some(key) = map.keys().find(|key| !keys.contains(&key.as_str())) {
            return Err(ConfigError::UnknownKey {
                file: file.to_owned(),
                section: path,
                key: clip(key, ECHO_BYTES_MAX),
                expected: keys,
            });
        }
        Ok(Self { file, path, map })
    }

    /// The value of `key`; an explicit `null` counts as absent.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// A sub-object, with its own key check, or `None` if absent or `null`.
    pub(super) fn section(
        &self,
        key: &str,
        keys: &'static [&'static str],
    ) -> Result<Option<Section<'a>>, ConfigError> {
        self.get(key)
            .map(|value| Section::new(self.file, self.child_path(key), value, keys))
            .transpose()
    }

    pub(super) fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// A string where `""` means unset, as in cc-metric-store.
    pub(super) fn non_empty_string(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        Ok(self.string(key)?.filter(|text| !text.is_empty()))
    }

    pub(super) fn boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(self.wrong_type(key, "true or false", other)),
        }
    }

    /// A JSON integer (no fraction, no exponent) in `i64` range.
    pub(super) fn integer(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "an integer", value)),
        }
    }

    /// A metric frequency: an integer number of seconds within [`FREQUENCY_S`].
    pub(super) fn frequency(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        match self.integer(key)? {
            Some(seconds) if !FREQUENCY_S.contains(&seconds) => Err(self.invalid(
                key,
                format!(
                    "must be a number of seconds from {} to {} (one day), found {seconds}",
                    FREQUENCY_S.start(),
                    FREQUENCY_S.end()
                ),
            )),
            other => Ok(other),
        }
    }

    /// A JSON integer ≥ 0.
    pub(super) fn unsigned(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a non-negative integer", value)),
        }
    }

    /// A JSON integer ≥ 1 that fits a `usize`.
    pub(super) fn count(&self, key: &str) -> Result<Option<usize>, ConfigError> {
        let Some(value) = self.unsigned(key)? else {
            return Ok(None);
        };
        if value == 0 {
            return Err(self.invalid(key, "must be greater than 0"));
        }
        usize::try_from(value)
            .map(Some)
            .map_err(|_| self.invalid(key, format!("{value} is too large")))
    }

    /// A Go duration string that must be greater than zero.
    pub(super) fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        let nanos =
            parse_go_duration(text).map_err(|error| self.invalid(key, error.to_string()))?;
        match u64::try_from(nanos) {
            Ok(nanos) if nanos > 0 => Ok(Some(Duration::from_nanos(nanos))),
            _ => Err(self.invalid(
                key,
                format!("must be greater than zero, found {}", quote(text)),
            )),
        }
    }

    /// A byte size: a JSON integer, or a string such as `"64MiB"` (see [`size`]).
    pub(super) fn size(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => parse_size(text)
                .map(Some)
                .map_err(|error| self.invalid(key, error.to_string())),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                self.wrong_type(
                    key,
                    "a non-negative integer or a size such as \"64MiB\"",
                    value,
                )
            }),
        }
    }

    /// A byte size ≥ 1 that fits a `usize`.
    pub(super) fn size_positive(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.size(key)? {
            Some(0) => Err(self.invalid(key, "must be greater than 0")),
            other => Ok(other),
        }
    }

    pub(super) fn size_usize(&self, key: &str) -> Result<Option<usize>, ConfigError> {
        self.size_positive(key)?
            .map(|bytes| {
                usize::try_from(bytes)
                    .map_err(|_| self.invalid(key, format!("{bytes} is too large")))
            })
            .transpose()
    }

    /// One of `choices`, mapped to its value.
    pub(super) fn choice<T: Copy>(
        &self,
        key: &str,
        choices: &[(&str, T)],
    ) -> Result<Option<T>, ConfigError> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        choices
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, value)| Some(*value))
            .ok_or_else(|| {
                let names: Vec<String> = choices.iter().map(|(name, _)| quote(name)).collect();
                self.invalid(
                    key,
                    format!(
                        "expected one of {}, found {}",
                        names.join(", "),
                        quote(text)
                    ),
                )
            })
    }

    /// The objects of the array `key`, each checked against `keys` and named `key[i]` in
    /// errors; empty when the key is absent or `null`.
    pub(super) fn objects(
        &self,
        key: &str,
        keys: &'static [&'static str],
    ) -> Result<Vec<Section<'a>>, ConfigError> {
        let entries = match self.get(key) {
            None => return Ok(Vec::new()),
            Some(Value::Array(entries)) => entries,
            Some(other) => return Err(self.wrong_type(key, "an array", other)),
        };
        let path = self.child_path(key);
        entries
            .iter()
            .enumerate()
            .map(|(index, entry)| Section::new(self.file, format!("{path}[{index}]"), entry, keys))
            .collect()
    }

    /// An array of strings.
    pub(super) fn strings(&self, key: &str) -> Result<Option<Vec<&'a str>>, ConfigError> {
        let entries = match self.get(key) {
            None => return Ok(None),
            Some(Value::Array(entries)) => entries,
            Some(other) => return Err(self.wrong_type(key, "an array of strings", other)),
        };
        entries
            .iter()
            .map(|entry| match entry {
                Value::String(text) => Ok(text.as_str()),
                other => Err(self.wrong_type(key, "an array of strings", other)),
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// An object whose values are all strings (`{"name": "value"}`), in key order.
    pub(super) fn string_map(
        &self,
        key: &str,
    ) -> Result<Option<Vec<(&'a str, &'a str)>>, ConfigError> {
        let entries = match self.get(key) {
            None => return Ok(None),
            Some(Value::Object(entries)) => entries,
            Some(other) => return Err(self.wrong_type(key, "an object of strings", other)),
        };
        entries
            .iter()
            .map(|(name, value)| match value {
                Value::String(text) => Ok((name.as_str(), text.as_str())),
                other => Err(self.invalid(
                    key,
                    format!(
                        "the value of {} must be a string, found {}",
                        quote(name),
                        describe_value(other)
                    ),
                )),
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// A file path; `""` means unset, like the other strings.
    pub(super) fn path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.non_empty_string(key)?.map(PathBuf::from))
    }

    pub(super) fn required<T>(&self, key: &str, value: Option<T>) -> Result<T, ConfigError> {
        value.ok_or_else(|| self.missing(key))
    }

    pub(super) fn missing(&self, key: &str) -> ConfigError {
        ConfigError::MissingKey {
            file: self.file.to_owned(),
            section: self.path.clone(),
            key: key.to_owned(),
        }
    }

    pub(super) fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            file: self.file.to_owned(),
            section: self.path.clone(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    pub(super) fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> ConfigError {
        self.invalid(
            key,
            format!("expected {expected}, found {}", describe_value(found)),
        )
    }

    pub(super) fn not_supported(&self, key: &str, reason: &'static str) -> ConfigError {
        ConfigError::NotSupported {
            file: self.file.to_owned(),
            section: self.path.clone(),
            key: key.to_owned(),
            reason,
        }
    }
}

/// The map of `value`, or an error naming the section.
pub(super) fn object<'a>(
    file: &Path,
    section: &str,
    value: &'a Value,
) -> Result<&'a Map<String, Value>, ConfigError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ConfigError::NotAnObject {
            file: file.to_owned(),
            section: section.to_owned(),
            found: describe_value(other),
        }),
    }
}

/// A JSON string literal of `text`, clipped for error messages.
pub(super) fn quote(text: &str) -> String {
    format!("{:?}", clip(text, ECHO_BYTES_MAX))
}

/// A short description of a JSON value for "expected X, found Y" messages.
pub(super) fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => quote(text),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}
