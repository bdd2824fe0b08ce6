using System.Diagnostics;
using CommandLine;
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;

namespace PrunerZero.Cli;

[Verb("bench", HelpText = "Time one fitness check end to end, by phase, with the one-off costs (calibration, gradients).")]
public sealed class BenchOptions : PruningSetupOptions
{
    [Option("metric", Default = "pruner-zero", HelpText = "Metric of the fitness check.")]
    public string Metric { get; set; } = "pruner-zero";

    [Option("screen-windows", Default = Defaults.ScreenWindows, HelpText = "Windows of the fast fitness (evenly spaced over the test split).")]
    public int ScreenWindows { get; set; }

    [Option("repeat", Default = 3, HelpText = "Fitness checks to time after the one-off costs.")]
    public int Repeat { get; set; }
}

/// <summary>The `bench` verb: the cost of one search fitness check on a model, phase by phase.</summary>
public static class BenchCommand
{
    public static int Run(BenchOptions o)
    {
        var metric = PruningSetupOptions.ParseMetric(o.Metric);
        var target = o.Target();
        if (o.Repeat < 1) throw new PrunerZeroException($"--repeat must be at least 1, got {o.Repeat}");
        if (o.ScreenWindows < 1) throw new PrunerZeroException($"--screen-windows must be at least 1, got {o.ScreenWindows}");
        CliPaths.Cache(CliPaths.Pruning(o), o);
        o.Preflight(target);
        var progress = new ProgressLine();
        var log = new ProgressAwareWriter(progress, Console.Error);
        var sw = Stopwatch.StartNew();
        using var backend = o.Backend();
        using var session = new PruneSession(o.Session(), log, progress);
        double load = sw.Elapsed.TotalSeconds;
        _ = session.DenseStats;
        _ = session.Gradients;

        var rows = new List<(string Phase, double Seconds)>();
        double score = 0, mask = 0, restore = 0, eval = 0;
        for (int r = 0; r < o.Repeat; r++)
        {
            double restoreBefore = session.RestoreSeconds;
            var report = session.PruneOneShot(metric, target, backend);
            if (!report.Valid) throw new PrunerZeroException($"metric {metric} is invalid: {report.InvalidReason}");
            restore += session.RestoreSeconds - restoreBefore;
            score += report.ScoreSeconds;
            mask += report.MaskSeconds;
            sw.Restart();
            session.Evaluate(o.ScreenWindows, spread: true);
            eval += sw.Elapsed.TotalSeconds;
        }
        progress.Done();
        int n = o.Repeat;
        var cfg = session.Model.Config;
        Console.WriteLine($"model={session.Options.ModelDir} ({cfg.ParameterCount:N0} parameters) metric={metric} target={target}{(session.Options.Allocation.IsUniform ? "" : $" allocation={session.Options.Allocation.Id}")} screen windows={o.ScreenWindows} of {session.Options.EvalPath} seqlen={session.Seqlen} {session.Calibration.Describe()} checks={n} device={o.Device}");
        Console.WriteLine($"{"phase",-56} {"seconds",10}");
        Console.WriteLine($"{"one-off: load model, tokenize data, sample calibration",-56} {load,10:0.000}");
        Console.WriteLine($"{"one-off: calibration (dense X, all blocks)",-56} {session.CalibrationSeconds,10:0.000}");
        Console.WriteLine($"{"one-off: gradients G" + (session.GradientSeconds < 1 ? " (cached)" : ""),-56} {session.GradientSeconds,10:0.000}");
        Console.WriteLine($"{"per check: restore dense weights",-56} {restore / n,10:0.000}");
        Console.WriteLine($"{"per check: scoring (fused kernel + validity)",-56} {score / n,10:0.000}");
        Console.WriteLine($"{"per check: masking (row selection + zeroing)",-56} {mask / n,10:0.000}");
        Console.WriteLine($"{"per check: forward passes (evaluation)",-56} {eval / n,10:0.000}");
        Console.WriteLine($"{"per check: total",-56} {(restore + score + mask + eval) / n,10:0.000}");

        // The evaluation forward itself, on the dense model and the same screen windows.
        session.RestoreDense();
        var starts = Perplexity.WindowStarts(session.EvalTokens.Length, session.Seqlen, session.Options.EvalPath, o.ScreenWindows, spread: true);
        int batch = Perplexity.WindowBatch(cfg, session.Seqlen);
        var fp = ForwardProfile.Measure(session.Model, session.EvalTokens, session.Seqlen, starts, [.. new[] { 1, 2, 4, 8, batch }.Distinct().Order()]);
        Console.WriteLine($"forward: {fp.Threads} libtorch threads, {fp.Tokens:N0} tokens ({starts.Length} windows x {session.Seqlen}), {fp.FlopsPerToken / 1e6:0.00} MFLOP of matmul per token");
        Console.WriteLine($"{"windows per forward",-24} {"tokens/s",10} {"of floor",9}");
        foreach (var r in fp.Rates)
            Console.WriteLine($"{r.Batch + (r.Batch == batch ? " (used)" : ""),-24} {r.TokensPerSecond,10:N0} {r.TokensPerSecond / fp.CeilingTokensPerSecond,9:P0}");
        Console.WriteLine($"floor: sgemm at {fp.GemmFlopsPerSecond / 1e9:0.0} GFLOP/s = {fp.CeilingTokensPerSecond:N0} tokens/s; final norm + head + cross-entropy {fp.HeadShare:P0} of the forward");
        return 0;
    }
}
