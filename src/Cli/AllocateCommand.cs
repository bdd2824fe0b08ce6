using System.Globalization;
using CommandLine;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Search;
using PrunerZero.Workflows;

namespace PrunerZero.Cli;

[Verb("allocate", HelpText = "Search the sparsity of each block for a metric and target (evolutionary, EvoPress-style); writes an allocation profile for --allocation FILE.")]
public sealed class AllocateOptions : CalibrationOptions
{
    [Option("run", Required = true, HelpText = "Run folder: search.db (resume), allocation.json, history.csv, report.md, allocation.png.")]
    public string Run { get; set; } = "";

    [Option("metric", Default = "wanda", HelpText = "The metric the allocation is searched for.")]
    public string Metric { get; set; } = "wanda";

    [Option("sparsity", Default = 0.5, HelpText = "Target unstructured sparsity over all blocks.")]
    public double Sparsity { get; set; }

    [Option("generations", Default = 50)] public int Generations { get; set; }
    [Option("offspring", Default = 16, HelpText = "Children of each generation's parent.")] public int Offspring { get; set; }
    [Option("step", Default = 0.025, HelpText = "Grid step of the block sparsities.")] public double Step { get; set; }

    [Option("stages", Default = "8x4,32x1", HelpText = "Selection stages WINDOWSxSURVIVORS,...: every candidate on the first stage's calibration windows, the survivors on the next; the last keeps 1.")]
    public string Stages { get; set; } = "8x4,32x1";

    [Option("start", Default = "owl", HelpText = "Where the search starts: owl (OWL's profile on the grid, with --owl-m and --owl-lambda) or uniform.")]
    public string Start { get; set; } = "owl";

    [Option("seed", Default = 0, HelpText = "Seed of the mutations.")] public long Seed { get; set; }
    [Option("resume", HelpText = "Continue the run in --run (its parameters must match; --generations may grow).")] public bool Resume { get; set; }

    [Option("cache", HelpText = "Cache folder for gradients (default: $PZ_CACHE or ~/.cache/prunerzero).")]
    public string? Cache { get; set; }

    [Option("device", HelpText = "cpu (the default) or cuda.")]
    public string? DeviceOption { get; set; }

    [Option("owl-m", HelpText = "OWL's outlier threshold, for the start and the report's OWL column (default 5).")]
    public double? OwlM { get; set; }

    [Option("owl-lambda", HelpText = "OWL's spread, for the start and the report's OWL column (default 0.08).")]
    public double? OwlLambda { get; set; }

    public IReadOnlyList<(int Windows, int Survivors)> ParseStages()
    {
        var stages = new List<(int, int)>();
        foreach (var part in Stages.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var wk = part.Split('x');
            if (wk.Length != 2 || !int.TryParse(wk[0], NumberStyles.None, CultureInfo.InvariantCulture, out int w) ||
                !int.TryParse(wk[1], NumberStyles.None, CultureInfo.InvariantCulture, out int k))
                throw new PrunerZeroException($"--stages must be WINDOWSxSURVIVORS[,...], e.g. 8x4,32x1; got '{Stages}'");
            stages.Add((w, k));
        }
        return stages;
    }
}

public static class AllocateCommand
{
    public static AllocateSettings Settings(AllocateOptions o) => new()
    {
        Session = new SessionOptions
        {
            ModelDir = Defaults.Model(o.Model), CalibPath = o.CalibPath(), EvalPath = Defaults.Dataset(null), NSamples = o.NSamples,
            Seqlen = o.Seqlen, Sampling = o.Sampling(), Seed = o.CalibSeed, CacheDir = o.Cache ?? SessionOptions.DefaultCacheDir(),
            Device = o.DeviceOption ?? "cpu",
            // Only the report's OWL column: the search itself starts from uniform.
            Allocation = AllocationSpec.Uniform,
        },
        Metric = PruningSetupOptions.ParseMetric(o.Metric),
        Target = PruneTarget.Unstructured(o.Sparsity),
        RunDir = o.Run,
        Resume = o.Resume,
        Search = new AllocationSearchOptions
        {
            Target = o.Sparsity, Step = o.Step, Generations = o.Generations, Offspring = o.Offspring, Stages = o.ParseStages(), Seed = o.Seed,
        },
        Owl = AllocationSpec.Parse("owl", o.OwlM, o.OwlLambda),
        StartFromOwl = o.Start.ToLowerInvariant() switch
        {
            "owl" => true,
            "uniform" => false,
            _ => throw new PrunerZeroException($"--start must be owl or uniform, got '{o.Start}'"),
        },
    };

    public static int Run(AllocateOptions o)
    {
        var settings = Settings(o);
        // The session also loads the WikiText-2 text (never evaluated here): an input like the others.
        var paths = CliPaths.Calibration(o).InputFile("the WikiText-2 text", settings.Session.EvalPath);
        paths.OutputFolder("--cache", settings.Session.CacheDir, subfolder: "gradients");
        paths.OutputFolder("--run", o.Run, AllocateWorkflow.RunFiles);
        Workflows.Setup.CheckModel(settings.Session.ModelDir, o.Seqlen, settings.Target);
        var progress = new ProgressLine();
        var log = new ProgressAwareWriter(progress, Console.Error);
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); log.WriteLine("stopping after the current generation; continue with --resume"); };
        var outcome = AllocateWorkflow.Run(settings, log, progress, cts.Token);
        progress.Done();
        var r = outcome.Report;
        Console.WriteLine(r.Protocol);
        Console.WriteLine($"generations {r.History.Count} (resumed {r.ResumedGenerations}){(r.Stopped ? ", stopped early" : "")}, evaluations {r.Evaluations}, calibration windows evaluated {r.WindowsSpent}");
        foreach (var (name, loss) in outcome.Compared)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-28} mean NLL {loss:0.00000} (perplexity {Math.Exp(loss):0.000}) on {settings.Search.Stages[^1].Windows} calibration windows"));
        Console.WriteLine($"profile: {outcome.Best}");
        foreach (var (kind, path) in outcome.Files) Console.WriteLine($"{kind}: {path}");
        return 0;
    }
}
