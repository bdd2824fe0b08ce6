// `score`: the same dense model pruned with each line of a metric library (sequential protocol), perplexity on the
// evaluation data, optionally zero-shot accuracy, and with screen windows the search's screen fitness per line and
// the rank agreement of screen and full numbers (ScreenFidelity).
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Runtime.ZeroShot;

namespace PrunerZero.Workflows;

public sealed record ScoreRow(string Line, string? Metric, bool Valid, string? Reason, double? Sparsity, double? Perplexity, double? BitsPerByte, double Seconds,
    double? ZeroShotMeanAcc = null)
{
    /// <summary>With screen windows: the search's screen fitness on each window count, in the order given; empty otherwise.</summary>
    public IReadOnlyList<ScreenScore> Screens { get; init; } = [];
    /// <summary>Seconds of the full protocol alone (prune and perplexity, without zero-shot); null for an invalid line.</summary>
    public double? FullSeconds { get; init; }
}

/// <summary>Everything `score` runs with (the CLI builds it from its options).</summary>
public sealed record ScoreSettings
{
    /// <summary>Model, data, calibration, G cache, device and evaluation windows.</summary>
    public required SessionOptions Session { get; init; }
    public required PruneTarget Target { get; init; }
    /// <summary>The library: one expression or name per line, comments and blank lines already removed.</summary>
    public required IReadOnlyList<string> Lines { get; init; }
    public WeightUpdate Update { get; init; } = WeightUpdate.None;
    /// <summary>Window counts of the screen fitness (checked by <see cref="ScoreWorkflow.CheckScreenWindows"/>); empty: no screen.</summary>
    public IReadOnlyList<int> ScreenWindows { get; init; } = [];
    /// <summary>k of the top-k overlap in the fidelity table.</summary>
    public int TopK { get; init; } = 10;
    /// <summary>Zero-shot tasks, loaded; null: no zero-shot.</summary>
    public IReadOnlyList<ZeroShotTask>? ZeroShotTasks { get; init; }
    public int? ZeroShotLimit { get; init; }
}

/// <summary>What `score` hands back to be printed.</summary>
/// <param name="Rows">Valid lines by perplexity, then the invalid ones.</param>
public sealed record ScoreOutcome(IReadOnlyList<ScoreRow> Rows, string Protocol, string? ScreenProtocol, IReadOnlyList<FidelityRow>? Fidelity);

public static class ScoreWorkflow
{
    /// <summary>The screen window counts, checked before anything is loaded: positive, no repeats, no weight update.</summary>
    public static void CheckScreenWindows(IReadOnlyList<int> windows, bool topKGiven, int topK, WeightUpdate update)
    {
        static string P(string p) => UserError.P(p);
        if (windows.Count == 0 && topKGiven) throw new PrunerZeroException($"{P("top_k")} applies to {P("screen_windows")}, which is not given");
        if (windows.Count == 0) return;
        foreach (int n in windows)
            if (n < 1) throw new PrunerZeroException($"{P("screen_windows")} must be positive window counts, got {n}");
        if (windows.Distinct().Count() != windows.Count) throw new PrunerZeroException($"{P("screen_windows")} repeats a count: {string.Join(",", windows)}");
        if (update != WeightUpdate.None) throw new PrunerZeroException($"{P("screen_windows")} measures the search's screen fitness, which has no weight update; drop {P("update")}");
        if (topK < 1) throw new PrunerZeroException($"{P("top_k")} must be at least 1, got {topK}");
    }

    public static ScoreOutcome Run(ScoreSettings s, TextWriter log, IProgress<string> progress)
    {
        var target = s.Target;
        var screenWindows = s.ScreenWindows;
        using var backend = Setup.Backend(s.Session.Device);
        using var session = new PruneSession(s.Session, log, progress);
        int splitWindows = Perplexity.WindowCount(session.EvalTokens.Length, session.Seqlen, session.Options.EvalPath);
        foreach (int n in screenWindows)
            if (n > splitWindows)
                throw new PrunerZeroException($"{UserError.P("screen_windows")} {n} exceeds the {splitWindows} windows of {Path.GetFileName(session.Options.EvalPath)} at seqlen {session.Seqlen}");
        // The search's own fitness, one per window count: the screen numbers are exactly what `search` would record.
        var screens = screenWindows.Select(n => new PruningFitness(session, target, backend, n)).ToList();
        var rows = new List<ScoreRow>();
        foreach (var line in s.Lines)
        {
            PruneMethod metric;
            try { metric = PruneMethod.Resolve(line, s.Update); }
            catch (MetricParseException e)
            {
                rows.Add(new ScoreRow(line, null, false, e.Message, null, null, null, 0));
                log.WriteLine($"skipped '{MetricParseException.Excerpt(line, 0)}': {e.Message}");
                continue;
            }
            var screened = screens.Select(f => Screen(f, metric)).ToList();
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var report = session.Prune(metric, target, backend);
            if (!report.Valid)
            {
                rows.Add(new ScoreRow(line, metric.ToString(), false, report.InvalidReason, null, null, null, sw.Elapsed.TotalSeconds) { Screens = screened });
                log.WriteLine($"invalid {metric}: {report.InvalidReason}");
                continue;
            }
            var ppl = session.Evaluate();
            double fullSeconds = sw.Elapsed.TotalSeconds;
            if (!double.IsFinite(ppl.Perplexity))
            {
                string why = JsonNumbers.Note("perplexity", ppl.Perplexity)!;
                rows.Add(new ScoreRow(line, metric.ToString(), false, why, report.Overall, null, null, fullSeconds) { Screens = screened });
                log.WriteLine($"invalid {metric}: {why}");
                continue;
            }
            double? zs = s.ZeroShotTasks is null ? null
                : ZeroShotEvaluator.Run(session.Model, session.Tokenizer, s.ZeroShotTasks, s.ZeroShotLimit, progress).MeanAcc;
            rows.Add(new ScoreRow(line, metric.ToString(), true, null, report.Overall, ppl.Perplexity, ppl.BitsPerByte, sw.Elapsed.TotalSeconds, zs)
                { Screens = screened, FullSeconds = fullSeconds });
            string screenNote = string.Concat(screened.Select(x => $", screen@{x.Windows} {Fmt(x.Perplexity)}"));
            log.WriteLine($"{metric}: perplexity {ppl.Perplexity:0.000} at sparsity {report.Overall:0.0000}{screenNote} ({sw.Elapsed.TotalSeconds:0.0} s)");
        }
        var sorted = rows.OrderBy(r => r.Valid ? 0 : 1).ThenBy(r => r.Perplexity ?? double.MaxValue).ToList();
        string windows = s.Session.EvalWindows?.ToString() ?? "all";
        // The model folder is named here (a description for the reader, not an identity).
        string protocol = $"model={s.Session.ModelDir} " + session.Protocol(target) + $" windows={windows}"
            + (s.ZeroShotTasks is null ? "" : $" zeroshot={string.Join(",", s.ZeroShotTasks.Select(t => t.Name))}{(s.ZeroShotLimit is int zl ? $" zeroshot_limit={zl}" : "")}");
        var fidelity = screenWindows.Count == 0 ? null : ScreenFidelity.Of(rows, screenWindows, s.TopK);
        string? screenProtocol = screenWindows.Count == 0 ? null
            : $"screen=one-shot(dense X, G) on {string.Join(",", screenWindows)} windows evenly spaced over the {splitWindows}; full=sequential, windows={windows}";
        return new ScoreOutcome(sorted, protocol, screenProtocol, fidelity);
    }

    /// <summary>The search's screen of one library line; sparsegpt is no metric the search could screen, so it has no screen number.</summary>
    static ScreenScore Screen(PruningFitness fitness, PruneMethod method)
    {
        if (method.SparseGptMask) return new ScreenScore(fitness.ScreenWindows, false, null, "sparsegpt is not a metric: no screen fitness", 0);
        var r = fitness.Screen(method.Metric, CancellationToken.None);
        return new ScreenScore(fitness.ScreenWindows, r.Valid, r.Valid ? r.Perplexity : null, r.InvalidReason, r.Seconds);
    }

    static string Fmt(double? v) => v?.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture) ?? "-";
}
