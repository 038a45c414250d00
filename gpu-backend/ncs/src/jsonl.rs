//! The line-oriented NCS entry point behind `h200 ncs`: one JSON array of numbers per input line,
//! one `{"cluster_id", "is_outlier", "outlier_score"}` object per output line.

use std::io::{self, BufRead, BufWriter, Write};
use std::time::Instant;

use candle_core::Device;
use thiserror::Error;

use crate::batched::{BatchError, BatchedNcs, DEFAULT_CHUNK};
use crate::exact::NcsStream;
use crate::params::AlgorithmParams;
use crate::point::{NcsError, PointResult};

/// Which kernel processes the points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Point by point on the CPU ([`NcsStream::process`]).
    Exact,
    /// A chunk at a time, scored by one matrix product on the device ([`BatchedNcs`]).
    Batched,
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunStats {
    /// Points answered.
    pub points: u64,
    /// Wall-clock seconds, parsing and writing included.
    pub seconds: f64,
}

/// Why a run stopped; the answers to the lines before the failing one are already written.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("reading the input: {0}")]
    Read(#[source] io::Error),
    #[error("writing the output: {0}")]
    Write(#[source] io::Error),
    #[error("line {line}: not a JSON array of numbers: {source}")]
    Json {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("line {line}: {source}")]
    Point {
        line: usize,
        #[source]
        source: NcsError,
    },
    #[error("device: {0}")]
    Device(#[source] candle_core::Error),
}

/// Runs a fresh stream with the default parameters over `input`, writing one answer per point
/// to `output`. Blank lines are skipped.
pub fn run_jsonl(
    mode: Mode,
    input: impl BufRead,
    output: impl Write,
    device: &Device,
) -> Result<RunStats, RunError> {
    let stream = NcsStream::new(AlgorithmParams::default())
        .expect("the default parameters are valid; this is a bug");
    run_jsonl_on(stream, mode, input, output, device).map(|(stats, _)| stats)
}

/// Like [`run_jsonl`], continuing `stream`, which it returns with the run's effect.
pub fn run_jsonl_on(
    stream: NcsStream,
    mode: Mode,
    input: impl BufRead,
    output: impl Write,
    device: &Device,
) -> Result<(RunStats, NcsStream), RunError> {
    let start = Instant::now();
    let mut output = BufWriter::new(output);
    let (points, stream) = match mode {
        Mode::Exact => exact(stream, input, &mut output)?,
        Mode::Batched => batched(stream, input, &mut output, device)?,
    };
    output.flush().map_err(RunError::Write)?;
    let stats = RunStats {
        points,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((stats, stream))
}

fn parse(line: &str, number: usize) -> Result<Vec<f32>, RunError> {
    serde_json::from_str(line).map_err(|source| RunError::Json {
        line: number,
        source,
    })
}

fn write_result(output: &mut impl Write, result: &PointResult) -> Result<(), RunError> {
    serde_json::to_writer(&mut *output, result)
        .map_err(|e| RunError::Write(io::Error::other(e)))?;
    output.write_all(b"\n").map_err(RunError::Write)
}

fn exact(
    mut stream: NcsStream,
    input: impl BufRead,
    output: &mut impl Write,
) -> Result<(u64, NcsStream), RunError> {
    let mut points = 0;
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(RunError::Read)?;
        if line.trim().is_empty() {
            continue;
        }
        let point = parse(&line, i + 1)?;
        let result = stream.process(&point).map_err(|source| RunError::Point {
            line: i + 1,
            source,
        })?;
        write_result(output, &result)?;
        points += 1;
    }
    Ok((points, stream))
}

fn batched(
    stream: NcsStream,
    input: impl BufRead,
    output: &mut impl Write,
    device: &Device,
) -> Result<(u64, NcsStream), RunError> {
    let mut runner = BatchedNcs::new(stream, device.clone());
    let mut batch: Vec<Vec<f32>> = Vec::with_capacity(DEFAULT_CHUNK);
    let mut lines: Vec<usize> = Vec::with_capacity(DEFAULT_CHUNK);
    let mut results = Vec::with_capacity(DEFAULT_CHUNK);
    let mut points = 0;
    let mut input = input.lines().enumerate();
    loop {
        batch.clear();
        lines.clear();
        for (i, line) in input.by_ref() {
            let line = line.map_err(RunError::Read)?;
            if line.trim().is_empty() {
                continue;
            }
            batch.push(parse(&line, i + 1)?);
            lines.push(i + 1);
            if batch.len() == DEFAULT_CHUNK {
                break;
            }
        }
        if batch.is_empty() {
            return Ok((points, runner.into_stream()));
        }
        results.clear();
        let outcome = runner.process_batch(&batch, &mut results);
        for r in &results {
            write_result(output, r)?;
        }
        points += results.len() as u64;
        match outcome {
            Ok(()) => {}
            Err(BatchError::Point { index, source }) => {
                return Err(RunError::Point {
                    line: lines[index],
                    source,
                });
            }
            Err(BatchError::Device(e)) => return Err(RunError::Device(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &str = "[0.0, 1.0]\n[0.1, 1.0]\n\n[5.0, -3.0]\n[0.0, 1.1]\n";

    fn run(mode: Mode, input: &str) -> (Result<RunStats, RunError>, String) {
        let mut out = Vec::new();
        let r = run_jsonl(mode, input.as_bytes(), &mut out, &Device::Cpu);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn writes_one_object_per_point() {
        for mode in [Mode::Exact, Mode::Batched] {
            let (stats, out) = run(mode, INPUT);
            assert_eq!(stats.unwrap().points, 4);
            let lines: Vec<serde_json::Value> = out
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len(), 4);
            assert_eq!(lines[0]["cluster_id"], 0);
            assert_eq!(lines[0]["is_outlier"], false);
            assert!(lines.iter().all(|l| l["outlier_score"].is_number()));
        }
        assert_eq!(run(Mode::Exact, INPUT).1, run(Mode::Batched, INPUT).1);
    }

    #[test]
    fn reports_the_failing_line() {
        for mode in [Mode::Exact, Mode::Batched] {
            let (r, out) = run(mode, "[1.0, 2.0]\n\n[1.0]\n[2.0, 2.0]\n");
            assert!(matches!(
                r,
                Err(RunError::Point {
                    line: 3,
                    source: NcsError::DimensionMismatch { .. }
                })
            ));
            assert_eq!(out.lines().count(), 1);
            let (r, _) = run(mode, "[1.0, 2.0]\n{\"x\": 1}\n");
            assert!(matches!(r, Err(RunError::Json { line: 2, .. })));
            let (r, _) = run(mode, "[1e39]\n");
            assert!(matches!(r, Err(RunError::Point { line: 1, .. })));
        }
    }
}
