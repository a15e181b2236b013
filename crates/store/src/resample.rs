//! Downsampling of query results (COMPAT.md §2.4 and decision 8).
//!
//! Both resamplers share cc-lib's rules for *whether* to resample: only when the requested
//! resolution is a coarser multiple of the metric's frequency and the series has at least
//! `minimum_points` points. LTTB keeps the visual shape (peaks survive); `Average` is the bucket
//! mean ignoring NaN, the RRD-style consolidation users asked for (cc-backend #526).

/// Which downsampling algorithm to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResamplerKind {
    /// Largest-Triangle-Three-Buckets, cc-metric-store's only algorithm.
    #[default]
    Lttb,
    /// The mean of each bucket of `resolution / frequency` points, ignoring NaN.
    Average,
}

impl std::fmt::Display for ResamplerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Lttb => "lttb",
            Self::Average => "average",
        })
    }
}

/// A resampler and its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resampler {
    pub kind: ResamplerKind,
    /// Series shorter than this are returned unchanged (cc-lib `MinimumRequiredPoints`).
    pub minimum_points: usize,
}

impl Default for Resampler {
    fn default() -> Self {
        Self {
            kind: ResamplerKind::Lttb,
            minimum_points: 1000,
        }
    }
}

/// A resolution the resampler cannot produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "new sampling frequency ({resolution_s}) must be a multiple of old frequency ({frequency_s})"
)]
pub struct NotAMultiple {
    pub resolution_s: i64,
    pub frequency_s: i64,
}

impl Resampler {
    /// Resamples `data` (one point per `frequency_s`) towards `resolution_s`. Returns the new
    /// data, or `None` when the data stays as it is, and the resolution of the result.
    pub fn resample(
        &self,
        data: &[f32],
        frequency_s: i64,
        resolution_s: i64,
    ) -> Result<(Option<Vec<f32>>, i64), NotAMultiple> {
        if frequency_s <= 0 || resolution_s <= 0 || resolution_s <= frequency_s {
            return Ok((None, frequency_s));
        }
        if resolution_s % frequency_s != 0 {
            return Err(NotAMultiple {
                resolution_s,
                frequency_s,
            });
        }
        let step = (resolution_s / frequency_s) as usize;
        let points = data.len() / step;
        if points == 0 || data.len() < self.minimum_points || points >= data.len() {
            return Ok((None, frequency_s));
        }
        let resampled = match self.kind {
            ResamplerKind::Lttb => lttb(data, points),
            ResamplerKind::Average => average(data, step),
        };
        Ok((Some(resampled), resolution_s))
    }
}

/// Largest-Triangle-Three-Buckets down to `threshold` points, with cc-lib's NaN behaviour: a
/// NaN anywhere in the next bucket makes its average NaN, and a candidate whose triangle area
/// is NaN wins its bucket (the last such candidate), because cc-lib compares
/// `area > max || isNaN(area)`.
fn lttb(data: &[f32], threshold: usize) -> Vec<f32> {
    let (Some(&first), Some(&last)) = (data.first(), data.last()) else {
        return Vec::new();
    };
    if threshold >= data.len() || threshold == 0 {
        return data.to_vec();
    }
    let mut sampled = Vec::with_capacity(threshold.max(2));
    sampled.push(first);
    if threshold > 2 {
        let every = (data.len() - 2) as f64 / (threshold - 2) as f64;
        let mut a = 0usize;
        for i in 0..threshold - 2 {
            let average_start = ((i + 1) as f64 * every) as usize + 1;
            let average_end = (((i + 2) as f64 * every) as usize + 1).min(data.len());
            let next_bucket = &data[average_start.min(average_end)..average_end];
            let length = next_bucket.len() as f64;
            let average_x = next_bucket
                .iter()
                .enumerate()
                .map(|(k, _)| (average_start + k) as f64)
                .sum::<f64>()
                / length;
            let average_y = next_bucket.iter().map(|&v| f64::from(v)).sum::<f64>() / length;

            let range_start = (i as f64 * every) as usize + 1;
            let range_end = ((i + 1) as f64 * every) as usize + 1;
            let point_x = a as f64;
            let point_y = f64::from(data[a]);
            let mut area_max = -1.0f64;
            let mut chosen = range_start;
            for (j, &value) in data
                .iter()
                .enumerate()
                .take(range_end.min(data.len()))
                .skip(range_start)
            {
                let area = ((point_x - average_x) * (f64::from(value) - point_y)
                    - (point_x - j as f64) * (average_y - point_y))
                    .abs()
                    * 0.5;
                if area > area_max || area.is_nan() {
                    area_max = area;
                    chosen = j;
                }
            }
            sampled.push(data[chosen]);
            a = chosen;
        }
    }
    sampled.push(last);
    sampled
}

/// The mean of each run of `step` points, ignoring NaN (all NaN → NaN). A last partial bucket
/// is kept, so the result still covers the whole window.
fn average(data: &[f32], step: usize) -> Vec<f32> {
    data.chunks(step)
        .map(|bucket| {
            let (sum, count) = bucket
                .iter()
                .filter(|v| !v.is_nan())
                .fold((0.0f64, 0usize), |(sum, count), &v| {
                    (sum + f64::from(v), count + 1)
                });
            if count == 0 {
                f32::NAN
            } else {
                (sum / count as f64) as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! Behaviour of cc-lib's `resampler_test.go` (COMPAT.md §8), written from the description.

    use super::*;

    const LTTB: Resampler = Resampler {
        kind: ResamplerKind::Lttb,
        minimum_points: 1000,
    };

    fn ramp(len: usize) -> Vec<f32> {
        (0..len).map(|i| i as f32).collect()
    }

    #[test]
    fn unchanged_when_resolution_is_native_or_finer() {
        assert_eq!(LTTB.resample(&ramp(2000), 60, 0), Ok((None, 60)));
        assert_eq!(LTTB.resample(&ramp(2000), 60, 60), Ok((None, 60)));
        assert_eq!(LTTB.resample(&ramp(2000), 60, 30), Ok((None, 60)));
    }

    #[test]
    fn non_multiple_is_an_error_even_for_short_series() {
        let error = LTTB.resample(&ramp(3), 60, 90).unwrap_err();
        assert_eq!(
            error.to_string(),
            "new sampling frequency (90) must be a multiple of old frequency (60)"
        );
    }

    #[test]
    fn below_threshold_is_unchanged() {
        assert_eq!(LTTB.resample(&ramp(999), 60, 120), Ok((None, 60)));
    }

    #[test]
    fn lttb_returns_len_over_step_points_keeping_first_and_last() {
        let data = ramp(1440);
        let (resampled, resolution) = LTTB.resample(&data, 60, 600).unwrap();
        let resampled = resampled.unwrap();
        assert_eq!(resolution, 600);
        assert_eq!(resampled.len(), 144);
        assert_eq!(resampled[0], 0.0);
        assert_eq!(resampled[143], 1439.0);
    }

    #[test]
    fn lttb_preserves_a_spike() {
        let mut data = vec![1.0f32; 2000];
        data[1234] = 100.0;
        let (resampled, _) = LTTB.resample(&data, 10, 100).unwrap();
        assert!(resampled.unwrap().contains(&100.0));
    }

    #[test]
    fn lttb_picks_a_nan_candidate() {
        let mut data = ramp(2000);
        data[500] = f32::NAN;
        let (resampled, _) = LTTB.resample(&data, 10, 100).unwrap();
        let resampled = resampled.unwrap();
        assert_eq!(resampled.len(), 200);
        assert!(resampled.iter().any(|v| v.is_nan()));
    }

    #[test]
    fn average_buckets_ignore_nan_and_keep_the_partial_tail() {
        let resampler = Resampler {
            kind: ResamplerKind::Average,
            minimum_points: 4,
        };
        let data = [1.0, 3.0, f32::NAN, 5.0, f32::NAN, f32::NAN, 7.0];
        let (resampled, resolution) = resampler.resample(&data, 10, 20).unwrap();
        let resampled = resampled.unwrap();
        assert_eq!(resolution, 20);
        assert_eq!(resampled.len(), 4);
        assert_eq!(resampled[0], 2.0);
        assert_eq!(resampled[1], 5.0);
        assert!(resampled[2].is_nan());
        assert_eq!(resampled[3], 7.0);
    }
}
