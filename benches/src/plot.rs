//! The run's plots, as SVG (plotters' SVG backend writes text as `<text>` elements, so no font
//! file is needed on the machine, unlike its bitmap backend):
//! - `latency-cdf.svg`: the distribution of per-invoke wall time of every case (a CDF, log time);
//! - `rss.svg`: resident memory of each runtime's process group over the run (log MB);
//! - `rss-a.svg`: case a alone on a linear scale, where a slope shows (the `--long` run);
//! - `cold-start.svg`: the median cold start of every case, with each fresh start as a dot.
use std::error::Error;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::report::{kb_to_mb, Results};
use crate::BenchError;

const SIZE: (u32, u32) = (960, 560);
const FONT: &str = "sans-serif";
/// Points per CDF line: enough to look smooth, few enough to keep the file small.
const CDF_POINTS: usize = 400;

type PlotResult = Result<(), Box<dyn Error>>;

/// Writes every plot that has data into `dir`; returns the paths written.
pub fn write_all(dir: &Path, results: &Results, samples: &[(String, Vec<u64>)]) -> Result<Vec<PathBuf>, BenchError> {
    std::fs::create_dir_all(dir).map_err(|source| BenchError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    let mut draw = |name: &str, plot: &dyn Fn(&Path) -> PlotResult| -> Result<(), BenchError> {
        let path = dir.join(name);
        plot(&path).map_err(|err| BenchError::Plot {
            path: path.clone(),
            reason: err.to_string(),
        })?;
        written.push(path);
        Ok(())
    };
    if samples.iter().any(|(_, s)| !s.is_empty()) {
        draw("latency-cdf.svg", &|path| latency_cdf(path, samples))?;
    }
    if results.cases.iter().any(|c| c.memory_over_run.len() > 1) {
        draw("rss.svg", &|path| rss_all(path, results))?;
    }
    if let Some(a) = results.cases.iter().find(|c| c.id == "a" && c.memory_over_run.len() > 1) {
        let points: Vec<(f64, f64)> = a
            .memory_over_run
            .iter()
            .map(|m| (m.invocations as f64, kb_to_mb(m.rss_kb)))
            .collect();
        draw("rss-a.svg", &|path| rss_one(path, "a", &points))?;
    }
    if results.cases.iter().any(|c| c.cold_start.count > 0) {
        draw("cold-start.svg", &|path| cold_starts(path, results))?;
    }
    Ok(written)
}

/// `(latency µs, percent of invokes at or below it)`, at most `CDF_POINTS` of them.
pub fn cdf_points(samples_ns: &[u64]) -> Vec<(f64, f64)> {
    let mut sorted = samples_ns.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(CDF_POINTS).max(1);
    let mut points: Vec<(f64, f64)> = (0..n)
        .step_by(step)
        .map(|i| (sorted[i] as f64 / 1_000.0, (i + 1) as f64 * 100.0 / n as f64))
        .collect();
    if points.last().is_some_and(|p| p.1 < 100.0) {
        points.push((sorted[n - 1] as f64 / 1_000.0, 100.0));
    }
    points
}

fn color(index: usize) -> RGBColor {
    let (r, g, b) = Palette99::pick(index).rgb();
    RGBColor(r, g, b)
}

fn latency_cdf(path: &Path, samples: &[(String, Vec<u64>)]) -> PlotResult {
    let lines: Vec<(&str, Vec<(f64, f64)>)> = samples.iter().map(|(id, s)| (id.as_str(), cdf_points(s))).collect();
    let all_x = lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let (lo, hi) = all_x.fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Per-invoke wall time (client side), CDF", (FONT, 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((lo.max(1.0) * 0.9..hi * 1.1).log_scale(), 0f64..100f64)?;
    chart
        .configure_mesh()
        .label_style((FONT, 14))
        .x_desc("µs per invoke (log scale)")
        .y_desc("% of invokes at or below")
        .draw()?;
    for (index, (id, points)) in lines.into_iter().enumerate() {
        let style = color(index).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points, style))?
            .label(id)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn rss_all(path: &Path, results: &Results) -> PlotResult {
    let cases: Vec<_> = results.cases.iter().filter(|c| c.memory_over_run.len() > 1).collect();
    let max_x = cases
        .iter()
        .flat_map(|c| c.memory_over_run.iter().map(|m| m.invocations))
        .max()
        .unwrap_or(1) as f64;
    let mbs = cases.iter().flat_map(|c| c.memory_over_run.iter().map(|m| kb_to_mb(m.rss_kb)));
    let (lo, hi) = mbs.fold((f64::MAX, 0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("RSS of the runtime's process group over the run", (FONT, 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..max_x, (lo.max(0.1) * 0.8..hi * 1.25).log_scale())?;
    chart
        .configure_mesh()
        .label_style((FONT, 14))
        .x_desc("timed invokes")
        .y_desc("MB (log scale)")
        .draw()?;
    for (index, case) in cases.iter().enumerate() {
        let style = color(index).stroke_width(2);
        let points = case.memory_over_run.iter().map(|m| (m.invocations as f64, kb_to_mb(m.rss_kb)));
        chart
            .draw_series(LineSeries::new(points, style))?
            .label(case.id.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn rss_one(path: &Path, id: &str, points: &[(f64, f64)]) -> PlotResult {
    let max_x = points.iter().map(|p| p.0).fold(1f64, f64::max);
    let hi = points.iter().map(|p| p.1).fold(0f64, f64::max);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("RSS of case {id} over the run (linear scale)"), (FONT, 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..max_x, 0f64..(hi * 1.2).max(1.0))?;
    chart
        .configure_mesh()
        .label_style((FONT, 14))
        .x_desc("timed invokes")
        .y_desc("MB")
        .draw()?;
    let style = color(0).stroke_width(2);
    chart.draw_series(LineSeries::new(points.iter().copied(), style))?;
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 2, style.filled())))?;
    root.present()?;
    Ok(())
}

fn cold_starts(path: &Path, results: &Results) -> PlotResult {
    let cases: Vec<_> = results.cases.iter().filter(|c| c.cold_start.count > 0).collect();
    let all = cases.iter().flat_map(|c| c.cold_start.samples_ms.iter().copied());
    let (lo, hi) = all.fold((f64::MAX, 0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let floor = (lo * 0.5).max(0.01);
    let n = cases.len() as i32;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Cold start: runtime spawn to first /next (bar: median; dots: each start)",
            (FONT, 20),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((0..n).into_segmented(), (floor..hi * 2.0).log_scale())?;
    let ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .label_style((FONT, 14))
        .x_labels(cases.len())
        .x_label_formatter(&|value| match value {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                usize::try_from(*i).ok().and_then(|i| ids.get(i)).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        })
        .y_desc("ms (log scale)")
        .draw()?;
    for (index, case) in cases.iter().enumerate() {
        let i = index as i32;
        let median = case.cold_start.median_ms;
        let bar = color(index).mix(0.5).filled();
        chart.draw_series(std::iter::once(Rectangle::new(
            [(SegmentValue::Exact(i), floor), (SegmentValue::Exact(i + 1), median)],
            bar,
        )))?;
        chart.draw_series(
            case.cold_start
                .samples_ms
                .iter()
                .map(|&ms| Circle::new((SegmentValue::CenterOf(i), ms), 2, BLACK.filled())),
        )?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{median:.1}"),
            (SegmentValue::CenterOf(i), median * 1.15),
            (FONT, 13),
        )))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_points_rise_to_100_percent_in_microseconds() {
        let samples: Vec<u64> = (1..=1_000).map(|i| i * 1_000).collect();
        let points = cdf_points(&samples);
        assert!(points.len() <= CDF_POINTS + 1, "{}", points.len());
        assert_eq!(points[0], (1.0, 0.1));
        assert_eq!(*points.last().unwrap(), (1_000.0, 100.0));
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        assert!(cdf_points(&[]).is_empty());
    }

    #[test]
    fn the_latency_plot_is_an_svg_naming_every_case() {
        let path = std::env::temp_dir().join(format!("bench-plot-test-{}.svg", std::process::id()));
        let samples = vec![
            ("a".to_owned(), (1..=500).map(|i| 40_000 + i * 10).collect::<Vec<u64>>()),
            ("b-case".to_owned(), (1..=500).map(|i| 60_000 + i * 20).collect()),
        ];
        latency_cdf(&path, &samples).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        assert!(svg.contains(">\nb-case\n</text>") && svg.contains("Per-invoke wall time"), "{svg}");
        assert_eq!(svg.matches(r#"stroke-width="2""#).count(), 4, "two lines and two legend marks");
    }
}
