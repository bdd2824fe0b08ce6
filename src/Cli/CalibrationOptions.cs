using CommandLine;
using PrunerZero.Runtime;

namespace PrunerZero.Cli;

/// <summary>The model and its calibration windows: the options of the pruning verbs and of `stats`.</summary>
public abstract class CalibrationOptions
{
    [Option("model", HelpText = "Checkpoint folder in Hugging Face layout (default: the embedded model).")]
    public string? Model { get; set; }

    [Option("calib", HelpText = "Calibration text: C4-style json/jsonl(.gz) with a text field, or plain text (default: the shipped C4 sample).")]
    public string? Calib { get; set; }

    [Option("nsamples", Default = 128, HelpText = "Calibration windows.")]
    public int NSamples { get; set; }

    [Option("seqlen", HelpText = "Calibration and evaluation window (default: max_position_embeddings, capped at 4096).")]
    public int? Seqlen { get; set; }

    [Option("calib-sampling", Default = "random", HelpText = "random (the reference's seeded sampling) or stride (evenly spaced windows).")]
    public string CalibSampling { get; set; } = "random";

    [Option("calib-seed", HelpText = "Seed of the random calibration sampling (default 0; refused with --calib-sampling stride, which draws nothing).")]
    public int? CalibSeedOption { get; set; }

    /// <summary>--calib-seed, 0 when not given.</summary>
    public int CalibSeed => CalibSeedOption ?? 0;

    public string CalibPath() => Calib ?? Defaults.Find(Defaults.Calibration);

    public Runtime.Pruning.CalibSampling Sampling()
    {
        var sampling = CalibSampling.ToLowerInvariant() switch
        {
            "random" => Runtime.Pruning.CalibSampling.Random,
            "stride" => Runtime.Pruning.CalibSampling.Stride,
            _ => throw new PrunerZeroException($"--calib-sampling must be random or stride, got '{CalibSampling}'"),
        };
        if (sampling == Runtime.Pruning.CalibSampling.Stride && CalibSeedOption is not null)
            throw new PrunerZeroException("--calib-seed applies to --calib-sampling random; stride sampling draws nothing");
        return sampling;
    }
}
