using System.Globalization;
using System.Text;
using System.Text.Json;
using CommandLine;
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;

namespace PrunerZero.Cli;

[Verb("score", HelpText = "Batch-score a library of metrics: prune the same dense model with each, report perplexity.")]
public sealed class ScoreOptions : PruneOptionsBase
{
    [Option("metrics", Required = true, HelpText = "File with one expression or name per line; '#' starts a comment.")]
    public string Metrics { get; set; } = "";

    [Option("json", HelpText = "Print the table as JSON on stdout.")]
    public bool Json { get; set; }

    [Option("csv", HelpText = "Also write the table as CSV to this file.")]
    public string? Csv { get; set; }

    [Option("screen-windows", Separator = ',', HelpText = "Screen fidelity: also score each metric with the search's screen fitness (one-shot, dense X and G) on each of these window counts, e.g. 4,16,64, and report the rank correlation with the full numbers.")]
    public IEnumerable<int>? ScreenWindows { get; set; }

    [Option("top-k", HelpText = "With --screen-windows: k of the top-k overlap (default 10; the search draws parents from its top-k).")]
    public int? TopKOption { get; set; }

    /// <summary>--top-k, 10 when not given.</summary>
    public int TopK => TopKOption ?? 10;
}

public sealed record ScoreRow(string Line, string? Metric, bool Valid, string? Reason, double? Sparsity, double? Perplexity, double? BitsPerByte, double Seconds,
    double? ZeroShotMeanAcc = null)
{
    /// <summary>With --screen-windows: the search's screen fitness on each window count, in the order given; empty otherwise.</summary>
    public IReadOnlyList<ScreenScore> Screens { get; init; } = [];
    /// <summary>Seconds of the full protocol alone (prune and perplexity, without zero-shot); null for an invalid line.</summary>
    public double? FullSeconds { get; init; }
}

/// <summary>One screen evaluation of a library line: what <see cref="PruningFitness.Screen"/> returns for that window count.</summary>
public sealed record ScreenScore(int Windows, bool Valid, double? Perplexity, string? Reason, double Seconds);

/// <summary>
/// How well the screen on <paramref name="Windows"/> windows ranks the library like the full protocol: over the
/// <paramref name="Candidates"/> lines valid under both, Spearman's ρ (average ranks for ties), Kendall's τ-b and
/// how many of the top-k by screen are in the top-k by full perplexity. Seconds are means over those lines.
/// </summary>
public sealed record FidelityRow(int Windows, int Candidates, double? Spearman, double? KendallTauB, int TopK, int? TopKOverlap,
    double ScreenSecondsPerCandidate, double FullSecondsPerCandidate);

public static class ScoreCommand
{
    /// <summary>A metric library is a short text file: larger is refused (stated in the error).</summary>
    public const long MaxMetricsBytes = 16L << 20;

    public static int Run(ScoreOptions o)
    {
        // The one output rule (VerbPaths), before anything is read: --csv is no input (not the library, the model's files, the data).
        var paths = CliPaths.Pruning(o).InputFile("--metrics", o.Metrics);
        if (o.Csv != null) paths.OutputFile("--csv", o.Csv);
        CliPaths.Cache(paths, o);
        if (!File.Exists(o.Metrics)) throw new PrunerZeroException($"metrics file not found: {o.Metrics}");
        var lines = PathSafety.ReadTextBounded(o.Metrics, "--metrics", MaxMetricsBytes).Split('\n')
            .Select(l => (l.Contains('#') ? l[..l.IndexOf('#')] : l).Trim())
            .Where(l => l.Length > 0).ToList();
        if (lines.Count == 0) throw new PrunerZeroException($"{o.Metrics}: no metrics");
        var target = o.Target();
        var update = PruneMethod.ParseUpdate(o.Update);
        var screenWindows = ScreenWindows(o, update);
        o.Preflight(target);
        var zeroShotTasks = o.LoadZeroShotTasks();
        var progress = new ProgressLine();
        var log = new ProgressAwareWriter(progress, Console.Error);
        using var backend = o.Backend();
        using var session = new PruneSession(o.Session(), log, progress);
        int splitWindows = Perplexity.WindowCount(session.EvalTokens.Length, session.Seqlen, session.Options.EvalPath);
        foreach (int n in screenWindows)
            if (n > splitWindows)
                throw new PrunerZeroException($"--screen-windows {n} exceeds the {splitWindows} windows of {Path.GetFileName(session.Options.EvalPath)} at seqlen {session.Seqlen}");
        // The search's own fitness, one per window count: the screen numbers are exactly what `search` would record.
        var screens = screenWindows.Select(n => new PruningFitness(session, target, backend, n)).ToList();
        var rows = new List<ScoreRow>();
        foreach (var line in lines)
        {
            PruneMethod metric;
            try { metric = PruneMethod.Resolve(line, update); }
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
            double? zs = zeroShotTasks is null ? null
                : Runtime.ZeroShot.ZeroShotEvaluator.Run(session.Model, session.Tokenizer, zeroShotTasks, o.ZeroShotLimit, progress).MeanAcc;
            rows.Add(new ScoreRow(line, metric.ToString(), true, null, report.Overall, ppl.Perplexity, ppl.BitsPerByte, sw.Elapsed.TotalSeconds, zs)
                { Screens = screened, FullSeconds = fullSeconds });
            string screenNote = string.Concat(screened.Select(x => $", screen@{x.Windows} {Fmt(x.Perplexity, "0.000")}"));
            log.WriteLine($"{metric}: perplexity {ppl.Perplexity:0.000} at sparsity {report.Overall:0.0000}{screenNote} ({sw.Elapsed.TotalSeconds:0.0} s)");
        }
        progress.Done();
        var sorted = rows.OrderBy(r => r.Valid ? 0 : 1).ThenBy(r => r.Perplexity ?? double.MaxValue).ToList();
        string protocol = session.Protocol(target) + $" windows={(o.Windows?.ToString() ?? "all")}"
            + (zeroShotTasks is null ? "" : $" zeroshot={string.Join(",", zeroShotTasks.Select(t => t.Name))}{(o.ZeroShotLimit is int zl ? $" zeroshot_limit={zl}" : "")}");
        List<FidelityRow>? fidelity = screenWindows.Count == 0 ? null : Fidelity(rows, screenWindows, o.TopK);
        string? screenProtocol = screenWindows.Count == 0 ? null
            : $"screen=one-shot(dense X, G) on {string.Join(",", screenWindows)} windows evenly spaced over the {splitWindows}; full=sequential, windows={(o.Windows?.ToString() ?? "all")}";
        if (o.Csv != null) File.WriteAllText(o.Csv, Csv(sorted, screenWindows));
        if (o.Json)
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                protocol,
                screen_protocol = screenProtocol,
                rows = sorted.Select(r => new
                {
                    line = r.Line, metric = r.Metric, valid = r.Valid, reason = r.Reason, sparsity = r.Sparsity, perplexity = r.Perplexity, bits_per_byte = r.BitsPerByte,
                    zeroshot_mean_acc = r.ZeroShotMeanAcc, seconds = r.Seconds,
                    screen = r.Screens.Select(x => new { windows = x.Windows, valid = x.Valid, perplexity = x.Perplexity, reason = x.Reason, seconds = x.Seconds }),
                }),
                fidelity = fidelity?.Select(f => new
                {
                    windows = f.Windows, candidates = f.Candidates, spearman = f.Spearman, kendall_tau_b = f.KendallTauB, top_k = f.TopK, top_k_overlap = f.TopKOverlap,
                    screen_seconds_per_candidate = f.ScreenSecondsPerCandidate, full_seconds_per_candidate = f.FullSecondsPerCandidate,
                }),
            }));
        else
        {
            Console.WriteLine(protocol);
            string zsHead = zeroShotTasks is null ? "" : $" {"0-shot acc",10}";
            string screenHead = string.Concat(screenWindows.Select(n => $" {"screen@" + n,11}"));
            Console.WriteLine($"{"metric",-44} {"valid",5} {"sparsity",8} {"perplexity",11}{screenHead}{zsHead} {"seconds",8}");
            foreach (var r in sorted)
            {
                string zs = zeroShotTasks is null ? "" : $" {Fmt(r.ZeroShotMeanAcc, "0.0000"),10}";
                string sc = string.Concat(r.Screens.Select(x => $" {Fmt(x.Perplexity, "0.000"),11}"));
                Console.WriteLine($"{Trunc(r.Metric ?? r.Line, 44),-44} {(r.Valid ? "yes" : "no"),5} {Fmt(r.Sparsity, "0.0000"),8} {Fmt(r.Perplexity, "0.000"),11}{sc}{zs} {r.Seconds,8:0.0}{(r.Valid ? "" : "  " + r.Reason)}");
            }
            if (fidelity != null)
            {
                Console.WriteLine();
                Console.WriteLine($"screen fidelity: {screenProtocol}; over the lines valid under both");
                Console.WriteLine($"{"windows",7} {"candidates",10} {"spearman",8} {"kendall",8} {"top-" + o.TopK,7} {"screen s",8} {"full s",8}");
                foreach (var f in fidelity)
                    Console.WriteLine($"{f.Windows,7} {f.Candidates,10} {Fmt(f.Spearman, "0.000"),8} {Fmt(f.KendallTauB, "0.000"),8} {(f.TopKOverlap is { } k ? $"{k}/{f.TopK}" : "-"),7} {f.ScreenSecondsPerCandidate,8:0.00} {f.FullSecondsPerCandidate,8:0.00}");
            }
        }
        return 0;
    }

    /// <summary>The --screen-windows counts, checked before anything is loaded: positive, no repeats, no --update.</summary>
    static List<int> ScreenWindows(ScoreOptions o, WeightUpdate update)
    {
        var list = o.ScreenWindows?.ToList() ?? [];
        if (list.Count == 0 && o.TopKOption is not null) throw new PrunerZeroException("--top-k applies to --screen-windows, which is not given");
        if (list.Count == 0) return list;
        foreach (int n in list)
            if (n < 1) throw new PrunerZeroException($"--screen-windows must be positive window counts, got {n}");
        if (list.Distinct().Count() != list.Count) throw new PrunerZeroException($"--screen-windows repeats a count: {string.Join(",", list)}");
        if (update != WeightUpdate.None) throw new PrunerZeroException("--screen-windows measures the search's screen fitness, which has no weight update; drop --update");
        if (o.TopK < 1) throw new PrunerZeroException($"--top-k must be at least 1, got {o.TopK}");
        return list;
    }

    /// <summary>The search's screen of one library line; sparsegpt is no metric the search could screen, so it has no screen number.</summary>
    static ScreenScore Screen(PruningFitness fitness, PruneMethod method)
    {
        if (method.SparseGptMask) return new ScreenScore(fitness.ScreenWindows, false, null, "sparsegpt is not a metric: no screen fitness", 0);
        var r = fitness.Screen(method.Metric, CancellationToken.None);
        return new ScreenScore(fitness.ScreenWindows, r.Valid, r.Valid ? r.Perplexity : null, r.InvalidReason, r.Seconds);
    }

    /// <summary>Rank agreement per window count over the lines valid under both the screen and the full protocol.</summary>
    public static List<FidelityRow> Fidelity(IReadOnlyList<ScoreRow> rows, IReadOnlyList<int> windows, int topK)
    {
        var result = new List<FidelityRow>();
        for (int i = 0; i < windows.Count; i++)
        {
            var both = rows.Where(r => r.Valid && r.Perplexity is not null && r.Screens[i] is { Valid: true, Perplexity: not null }).ToList();
            double[] screen = both.Select(r => r.Screens[i].Perplexity!.Value).ToArray();
            double[] full = both.Select(r => r.Perplexity!.Value).ToArray();
            int k = Math.Min(topK, Math.Max(both.Count, 1));
            result.Add(new FidelityRow(windows[i], both.Count,
                Search.RankCorrelation.Spearman(screen, full), Search.RankCorrelation.KendallTauB(screen, full),
                k, both.Count == 0 ? null : Search.RankCorrelation.TopKOverlap(screen, full, k),
                both.Count == 0 ? 0 : both.Average(r => r.Screens[i].Seconds),
                both.Count == 0 ? 0 : both.Average(r => r.FullSeconds ?? r.Seconds)));
        }
        return result;
    }

    static string Trunc(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";
    static string Fmt(double? v, string f) => v?.ToString(f, CultureInfo.InvariantCulture) ?? "-";

    static string Csv(List<ScoreRow> rows, IReadOnlyList<int> screenWindows)
    {
        var sb = new StringBuilder("metric,valid,sparsity,perplexity,bits_per_byte,zeroshot_mean_acc,seconds,reason");
        foreach (int n in screenWindows) sb.Append(CultureInfo.InvariantCulture, $",screen_{n},screen_{n}_seconds");
        sb.Append('\n');
        static string Q(string? s) => s is null ? "" : "\"" + s.Replace("\"", "\"\"") + "\"";
        foreach (var r in rows)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{Q(r.Metric ?? r.Line)},{r.Valid},{r.Sparsity},{r.Perplexity},{r.BitsPerByte},{r.ZeroShotMeanAcc},{r.Seconds:0.000},{Q(r.Reason)}");
            for (int i = 0; i < screenWindows.Count; i++)   // a line that did not parse has no screens: empty cells
                sb.Append(i < r.Screens.Count ? FormattableString.Invariant($",{r.Screens[i].Perplexity},{r.Screens[i].Seconds:0.000}") : ",,");
            sb.Append('\n');
        }
        return sb.ToString();
    }
}
