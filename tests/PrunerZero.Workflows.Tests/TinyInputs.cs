// Test parallelism is off: TorchGuarded counts the finalizer frees of one test at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace PrunerZero.Workflows.Tests;

/// <summary>A tiny random checkpoint, tiny text as data and calibration, and a private G cache (as the CLI tests use).</summary>
static class TinyInputs
{
    static readonly string Text = string.Concat(Enumerable.Range(0, 60).Select(i => $" = Section {i} = \n \n The {i} quick brown foxes jump over {i * 7} lazy dogs . \n"));

    public static (string Model, string Wiki, string Calib, string Cache) Setup()
    {
        string model = Runtime.Tests.TestCheckpoints.Write(Runtime.Tests.TestCheckpoints.Config(), seed: 17);
        string dir = Runtime.Tests.TestCheckpoints.TempDir("workflows");
        string wiki = Path.Combine(dir, "wiki.test.raw");
        File.WriteAllText(wiki, Text);
        string calib = Path.Combine(dir, "calib.txt");
        File.WriteAllText(calib, Text.Replace("quick", "slow"));
        return (model, wiki, calib, Path.Combine(dir, "cache"));
    }

    /// <summary>The session options of the CLI tests' common flags (--nsamples 4 --seqlen 32 --calib-sampling stride).</summary>
    public static Runtime.Pruning.SessionOptions Session((string Model, string Wiki, string Calib, string Cache) s) => new()
    {
        ModelDir = s.Model, CalibPath = s.Calib, EvalPath = s.Wiki, CacheDir = s.Cache, NSamples = 4, Seqlen = 32,
        Sampling = Runtime.Pruning.CalibSampling.Stride,
    };
}

/// <summary>Reports on the calling thread.</summary>
sealed class SyncProgress(Action<string> on) : IProgress<string>
{
    public void Report(string v) => on(v);
}
