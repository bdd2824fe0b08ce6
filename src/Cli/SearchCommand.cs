using System.Globalization;
using CommandLine;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Search;
using PrunerZero.Workflows;

namespace PrunerZero.Cli;

[Verb("search", HelpText = "Search for a symbolic pruning metric by genetic programming (Pruner-Zero, Algorithm 1).")]
public sealed class SearchOptionsCli : PruningSetupOptions
{
    [Option("run", Required = true, HelpText = "Run folder: search.db and the report files.")]
    public string Run { get; set; } = "";

    [Option("population", Default = 50)] public int Population { get; set; }
    [Option("iterations", Default = 300)] public int Iterations { get; set; }
    [Option("min-depth", Default = 3, HelpText = "Minimum tree height (a terminal has height 0), as DEAP counts depth.")] public int MinDepth { get; set; }
    [Option("max-depth", Default = 5)] public int MaxDepth { get; set; }
    [Option("top-k", Default = 10, HelpText = "Parents are drawn from the k best.")] public int TopK { get; set; }
    [Option("mutation", Default = 0.5, HelpText = "Probability of node mutation.")] public double Mutation { get; set; }
    [Option("seed", Default = 0, HelpText = "Seed of the search.")] public long Seed { get; set; }
    [Option("resume", HelpText = "Continue the run in --run (its parameters must match).")] public bool Resume { get; set; }

    [Option("screen-windows", Default = Defaults.ScreenWindows, HelpText = "Windows of the fast fitness, evenly spaced over the test split.")]
    public int ScreenWindows { get; set; }

    [Option("stages", Separator = ',', HelpText = "Staged screening, e.g. 16,128: every child is screened on an even spread of 16 windows first and goes on only while its estimate, less a margin of 3 standard errors, can still beat the population's worst; the last stage is --screen-windows. An estimate, not a proof (see docs/search.md); part of the run's identity. Without it every screen is exact (it still stops a child that provably cannot enter).")]
    public IEnumerable<int> Stages { get; set; } = [];

    [Option("report-top", Default = 10, HelpText = "Leaders re-checked on the full test split and reported.")]
    public int ReportTop { get; set; }

    [Option("batch", Default = 1, HelpText = "Children per batch, made from the population at the batch start and evaluated together; part of the run's identity.")]
    public int Batch { get; set; }

    [Option("cluster", HelpText = "Evaluate on the workers of this cluster: localhost[:PORT] or redis://HOST:PORT[/NAME] (see `worker`).")]
    public string? Cluster { get; set; }

    [Option("wait", HelpText = "With --cluster: seconds to wait for a reachable, compatible worker before failing (default 300).")]
    public int? WaitOption { get; set; }

    /// <summary>--wait, 300 when not given.</summary>
    public int Wait => WaitOption ?? 300;

    [Option("transfer-model", Separator = ',', HelpText = "Other checkpoints (DIR[,DIR...]): after the full re-check, the leaders and baselines are pruned and evaluated on each with the same full protocol, one model loaded at a time (a transfer table per model in report.md, all rows in transfer.csv).")]
    public IEnumerable<string> TransferModels { get; set; } = [];
}

public static class SearchCommand
{
    public static int Run(SearchOptionsCli o)
    {
        var target = o.Target();
        var settings = Settings(o, target);
        Validate(o, settings);
        o.Preflight(target);
        var identity = SearchWorkflow.Identity(settings);
        var progress = new ProgressLine();
        var log = new ProgressAwareWriter(progress, Console.Error);
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); log.WriteLine("stopping after the current evaluation; continue with --resume"); };
        var outcome = SearchWorkflow.Run(settings, identity, log, progress, cts.Token);
        progress.Done();

        var report = outcome.Report;
        Console.WriteLine(outcome.FitnessProtocol);
        Console.WriteLine($"{"rank",4}  {"screen ppl",10}  {"full ppl",10}  metric");
        int rank = 1;
        foreach (var c in report.Top)
            Console.WriteLine($"{rank++,4}  {c.Screen.Perplexity,10:0.000}  {(c.Full is { Valid: true } f ? f.Perplexity.ToString("0.000") : "-"),10}  {c.Expr}");
        foreach (var b in report.Baselines)
            Console.WriteLine($"{"base",4}  {b.Screen.Perplexity,10:0.000}  {b.Full.Perplexity,10:0.000}  {b.Name} = {b.Expr}");
        if (report.Best is { } best) Console.WriteLine($"best: {best.Expr}  (full perplexity {best.Full?.Perplexity:0.000})");
        foreach (var tr in report.Transfers) Print(tr);
        Console.WriteLine($"evaluations {report.Evaluations} (this process {report.FitnessCalls}), cache hits {report.CacheHits}, same mask {report.SameMask}, stopped early {report.Cut}, forward tokens {report.ForwardTokens:N0}");
        if (outcome.ClusterRates is { } rates) Console.WriteLine(rates);
        foreach (var (kind, path) in report.Files) Console.WriteLine($"{kind}: {path}");
        return 0;
    }

    /// <summary>The workflow's settings from the options.</summary>
    public static SearchSettings Settings(SearchOptionsCli o, PruneTarget target) => new()
    {
        Session = o.Session() with { EvalWindows = null }, Target = target, RunDir = o.Run,
        Population = o.Population, Iterations = o.Iterations, MinDepth = o.MinDepth, MaxDepth = o.MaxDepth, TopK = o.TopK,
        Mutation = o.Mutation, Seed = o.Seed, Resume = o.Resume, ScreenWindows = o.ScreenWindows, Stages = [.. o.Stages], ReportTop = o.ReportTop,
        Batch = o.Batch, Cluster = o.Cluster, Wait = o.Wait, TransferModels = [.. o.TransferModels],
    };

    /// <summary>What `search --cluster` connects with (the inputs hashed into its identity, as the search does).</summary>
    public static Cluster.ClusterFitnessOptions ClusterPlan(SearchOptionsCli o)
    {
        var settings = Settings(o, o.Target());
        return ClusterWiring.SearchPlan(settings, SearchWorkflow.Identity(settings));
    }

    /// <summary>Every search option, checked before anything is loaded.</summary>
    static void Validate(SearchOptionsCli o, SearchSettings settings)
    {
        SearchWorkflow.Check(settings, waitGiven: o.WaitOption is not null, cacheGiven: o.Cache is not null, deviceGiven: o.DeviceOption is not null);
        // The one output rule (VerbPaths): --run and --cache are no input and hold none where the search writes.
        var paths = CliPaths.Pruning(o);
        foreach (var t in o.TransferModels) paths.InputFolder("--transfer-model", t);
        CliPaths.Cache(paths, o);
        paths.OutputFolder("--run", o.Run, SearchWorkflow.RunFiles);
        // The run folder: writable, not holding a run unless resuming, not in use.
        SearchWorkflow.CheckRunFolder(o.Run, o.Resume);
    }

    static void Print(TransferReport t)
    {
        static string P(FitnessResult f) => f.Valid && double.IsFinite(f.Perplexity) ? f.Perplexity.ToString("0.000", CultureInfo.InvariantCulture) : "invalid";
        Console.WriteLine($"transfer to {t.Model} (sha256 {t.Sha256[..12]}…): {t.Protocol}");
        Console.WriteLine($"{"name",-12} {"search ppl",10} {"transfer ppl",12} {"rank",4} {"rank",4}  metric");
        foreach (var r in t.Rows)
            Console.WriteLine($"{r.Name,-12} {P(r.SearchFull),10} {P(r.Transfer),12} {r.SearchRank?.ToString() ?? "-",4} {r.TransferRank?.ToString() ?? "-",4}  {r.Expr}");
    }
}
