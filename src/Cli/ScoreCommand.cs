using System.Globalization;
using System.Text;
using System.Text.Json;
using CommandLine;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Workflows;

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
        var screenWindows = o.ScreenWindows?.ToList() ?? [];
        ScoreWorkflow.CheckScreenWindows(screenWindows, topKGiven: o.TopKOption is not null, o.TopK, update);
        o.Preflight(target);
        var zeroShotTasks = o.LoadZeroShotTasks();
        var progress = new ProgressLine();
        var log = new ProgressAwareWriter(progress, Console.Error);
        var outcome = ScoreWorkflow.Run(new ScoreSettings
        {
            Session = o.Session(), Target = target, Lines = lines, Update = update, ScreenWindows = screenWindows, TopK = o.TopK,
            ZeroShotTasks = zeroShotTasks, ZeroShotLimit = o.ZeroShotLimit,
        }, log, progress);
        progress.Done();
        var (sorted, protocol, screenProtocol, fidelity) = (outcome.Rows, outcome.Protocol, outcome.ScreenProtocol, outcome.Fidelity);
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

    static string Trunc(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";
    static string Fmt(double? v, string f) => v?.ToString(f, CultureInfo.InvariantCulture) ?? "-";

    static string Csv(IReadOnlyList<ScoreRow> rows, IReadOnlyList<int> screenWindows)
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
