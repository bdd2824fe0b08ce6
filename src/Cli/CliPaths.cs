using PrunerZero.Runtime;

namespace PrunerZero.Cli;

/// <summary>
/// The inputs of each verb, declared for <see cref="VerbPaths"/> (the one output rule every verb applies): its
/// checkpoint folder, data and calibration files (the shipped defaults too), metric library, zero-shot task files.
/// </summary>
public static class CliPaths
{
    /// <summary>Model and calibration (stats, and every pruning verb).</summary>
    public static VerbPaths Calibration(CalibrationOptions o) =>
        new VerbPaths().InputFolder("--model", Defaults.Model(o.Model)).InputFile("--calib", o.CalibPath());

    /// <summary>Model, calibration, dataset and the --zeroshot task files (prune, score, search, worker, bench).</summary>
    public static VerbPaths Pruning(PruningSetupOptions o)
    {
        var p = Calibration(o).InputFile("--dataset", Defaults.Dataset(o.Dataset));
        if (o is PruneOptionsBase { ZeroShot: true } z) TaskFiles(p, "--zeroshot-tasks", z.ZeroShotTasks);
        return p;
    }

    /// <summary>NAME=FILE entries of a task list: each FILE is an input.</summary>
    public static VerbPaths TaskFiles(VerbPaths p, string flag, IEnumerable<string>? tasks)
    {
        foreach (var t in tasks ?? [])
            if (t.IndexOf('=') is int i and > 0) p.InputFile(flag, t[(i + 1)..]);
        return p;
    }

    /// <summary>The G cache folder: written under CACHE/gradients; neither a file, nor read-only, nor inside an input.</summary>
    public static void Cache(VerbPaths p, PruningSetupOptions o) =>
        p.OutputFolder("--cache", o.Cache ?? Runtime.Pruning.SessionOptions.DefaultCacheDir(), subfolder: "gradients");
}
