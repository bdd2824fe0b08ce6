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
}

public sealed record ScoreRow(string Line, string? Metric, bool Valid, string? Reason, double? Sparsity, double? Perplexity, double? BitsPerByte, double Seconds,
    double? ZeroShotMeanAcc = null);

public static class ScoreCommand
{
    public static int Run(ScoreOptions o)
    {
        if (!File.Exists(o.Metrics)) throw new PrunerZeroException($"metrics file not found: {o.Metrics}");
        var lines = File.ReadAllLines(o.Metrics)
            .Select(l => (l.Contains('#') ? l[..l.IndexOf('#')] : l).Trim())
            .Where(l => l.Length > 0).ToList();
        if (lines.Count == 0) throw new PrunerZeroException($"{o.Metrics}: no metrics");
        var target = o.Target();
        var update = PruneMethod.ParseUpdate(o.Update);
        if (o.Csv != null) PathSafety.WritableFile(o.Csv, "--csv");   // before the work, not after it
        o.Preflight(target);
        var zeroShotTasks = o.LoadZeroShotTasks();
        var progress = new ProgressLine();
        var log = new ProgressAwareWriter(progress, Console.Error);
        using var backend = o.Backend();
        using var session = new PruneSession(o.Session(), log, progress);
        var rows = new List<ScoreRow>();
        foreach (var line in lines)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            PruneMethod metric;
            try { metric = PruneMethod.Resolve(line, update); }
            catch (MetricParseException e)
            {
                rows.Add(new ScoreRow(line, null, false, e.Message, null, null, null, 0));
                log.WriteLine($"skipped '{MetricParseException.Excerpt(line, 0)}': {e.Message}");
                continue;
            }
            var report = session.Prune(metric, target, backend);
            if (!report.Valid)
            {
                rows.Add(new ScoreRow(line, metric.ToString(), false, report.InvalidReason, null, null, null, sw.Elapsed.TotalSeconds));
                log.WriteLine($"invalid {metric}: {report.InvalidReason}");
                continue;
            }
            var ppl = session.Evaluate();
            if (!double.IsFinite(ppl.Perplexity))
            {
                string why = JsonNumbers.Note("perplexity", ppl.Perplexity)!;
                rows.Add(new ScoreRow(line, metric.ToString(), false, why, report.Overall, null, null, sw.Elapsed.TotalSeconds));
                log.WriteLine($"invalid {metric}: {why}");
                continue;
            }
            double? zs = zeroShotTasks is null ? null
                : Runtime.ZeroShot.ZeroShotEvaluator.Run(session.Model, session.Tokenizer, zeroShotTasks, o.ZeroShotLimit, progress).MeanAcc;
            rows.Add(new ScoreRow(line, metric.ToString(), true, null, report.Overall, ppl.Perplexity, ppl.BitsPerByte, sw.Elapsed.TotalSeconds, zs));
            log.WriteLine($"{metric}: perplexity {ppl.Perplexity:0.000} at sparsity {report.Overall:0.0000} ({sw.Elapsed.TotalSeconds:0.0} s)");
        }
        progress.Done();
        var sorted = rows.OrderBy(r => r.Valid ? 0 : 1).ThenBy(r => r.Perplexity ?? double.MaxValue).ToList();
        string protocol = session.Protocol(target) + $" windows={(o.Windows?.ToString() ?? "all")}";
        if (o.Csv != null) File.WriteAllText(o.Csv, Csv(sorted));
        if (o.Json)
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                protocol,
                rows = sorted.Select(r => new { line = r.Line, metric = r.Metric, valid = r.Valid, reason = r.Reason, sparsity = r.Sparsity, perplexity = r.Perplexity, bits_per_byte = r.BitsPerByte, zeroshot_mean_acc = r.ZeroShotMeanAcc, seconds = r.Seconds }),
            }));
        else
        {
            Console.WriteLine(protocol);
            string zsHead = zeroShotTasks is null ? "" : $" {"0-shot acc",10}";
            Console.WriteLine($"{"metric",-44} {"valid",5} {"sparsity",8} {"perplexity",11}{zsHead} {"seconds",8}");
            foreach (var r in sorted)
            {
                string zs = zeroShotTasks is null ? "" : $" {Fmt(r.ZeroShotMeanAcc, "0.0000"),10}";
                Console.WriteLine($"{Trunc(r.Metric ?? r.Line, 44),-44} {(r.Valid ? "yes" : "no"),5} {Fmt(r.Sparsity, "0.0000"),8} {Fmt(r.Perplexity, "0.000"),11}{zs} {r.Seconds,8:0.0}{(r.Valid ? "" : "  " + r.Reason)}");
            }
        }
        return 0;
    }

    static string Trunc(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";
    static string Fmt(double? v, string f) => v?.ToString(f, CultureInfo.InvariantCulture) ?? "-";

    static string Csv(List<ScoreRow> rows)
    {
        var sb = new StringBuilder("metric,valid,sparsity,perplexity,bits_per_byte,zeroshot_mean_acc,seconds,reason\n");
        static string Q(string? s) => s is null ? "" : "\"" + s.Replace("\"", "\"\"") + "\"";
        foreach (var r in rows)
            sb.Append(CultureInfo.InvariantCulture, $"{Q(r.Metric ?? r.Line)},{r.Valid},{r.Sparsity},{r.Perplexity},{r.BitsPerByte},{r.ZeroShotMeanAcc},{r.Seconds:0.000},{Q(r.Reason)}\n");
        return sb.ToString();
    }
}
