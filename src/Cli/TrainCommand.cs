using CommandLine;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Training;

namespace PrunerZero.Cli;

[Verb("train", HelpText = "Train a small LLaMA-architecture model (and its byte-level BPE tokenizer) from scratch.")]
public sealed class TrainOptionsCli
{
    [Option("out", Required = true, HelpText = "Output folder (Hugging Face layout).")]
    public string Out { get; set; } = "";

    [Option("config", Default = "tiny", HelpText = "Model preset: tiny (the embedded default), narrow (width 128, the transfer model) or micro (smoke tests).")]
    public string Config { get; set; } = "tiny";

    [Option("steps", HelpText = "Optimizer steps (default: the preset's).")]
    public int? Steps { get; set; }

    [Option("minutes", HelpText = "Stop after this many minutes with a checkpoint; continue later with --resume.")]
    public double? Minutes { get; set; }

    [Option("seed", Default = 1)]
    public int Seed { get; set; }

    [Option("resume", HelpText = "Continue from OUT/checkpoint.")]
    public bool Resume { get; set; }

    [Option("data", Separator = ',', HelpText = "Training text files (default: WikiText-2 valid + the C4 sample; never the test split).")]
    public IEnumerable<string>? Data { get; set; }

    [Option("lr", HelpText = "Peak learning rate of the warm-up + cosine schedule (default: the preset's).")]
    public double? Lr { get; set; }

    [Option("bos-first", HelpText = "Open every training sequence with BOS (the default draws plain windows of the token stream, BOS only at document starts).")]
    public bool BosFirst { get; set; }

    [Option("snapshot-every", HelpText = "Also save a loadable model every N steps under OUT/snapshots/step-NNNNNN (to follow how outliers grow).")]
    public int? SnapshotEvery { get; set; }

    [Option("no-eval", HelpText = "Skip the closing WikiText-2 test evaluation and model card.")]
    public bool NoEval { get; set; }
}

public static class TrainCommand
{
    public static int Run(TrainOptionsCli o, string[] args)
    {
        var files = o.Data?.ToList() is { Count: > 0 } d ? d : [Defaults.Find("data/wikitext-2-raw/wiki.valid.raw"), Defaults.Find(Defaults.Calibration)];
        if (files.Any(f => Path.GetFileName(f) == "wiki.test.raw"))
            throw new PrunerZeroException("refusing to train on wiki.test.raw: it is the evaluation split");
        if (o.Steps is < 1) throw new PrunerZeroException($"--steps must be at least 1, got {o.Steps}");
        if (o.Minutes is double m && !(m > 0 && double.IsFinite(m))) throw new PrunerZeroException($"--minutes must be positive, got {m}");
        GuardExistingModel(o);
        // The one output rule (VerbPaths): no --data file is --out or lies in it (the model card, config and
        // tokenizer files written there could replace it); a file or a read-only folder is refused now.
        var paths = new VerbPaths();
        foreach (var f in files) paths.InputFile("--data", f);
        paths.NoInputInside("--out", o.Out);
        paths.OutputFolder("--out", o.Out);
        var progress = new ProgressLine();
        LlamaTrainer.Train(Plan(o, files), progress, new ProgressAwareWriter(progress, Console.Error));
        progress.Done();
        if (WritesModelCard(o) && File.Exists(Path.Combine(o.Out, "training.json")))
            ModelCard.Write(o.Out, "prunerzero " + string.Join(' ', args), files, progress);
        return 0;
    }

    /// <summary>The training run the options describe (every option but --no-eval, which is about the model card, reaches it).</summary>
    public static TrainOptions Plan(TrainOptionsCli o, IReadOnlyList<string>? files = null) => new()
    {
        OutDir = o.Out, TrainFiles = files ?? o.Data?.ToList() ?? [], Preset = o.Config, Seed = o.Seed, Steps = o.Steps, Minutes = o.Minutes,
        Resume = o.Resume, LearningRate = o.Lr, BosFirst = o.BosFirst, SnapshotEvery = o.SnapshotEvery,
    };

    /// <summary>Whether the run ends with the WikiText-2 test evaluation and the model card (--no-eval skips both).</summary>
    public static bool WritesModelCard(TrainOptionsCli o) => !o.NoEval;

    /// <summary>
    /// A folder that already holds a model is never trained over: only --resume of a training run that left its
    /// checkpoint there (OUT/checkpoint/state.json) may write to it.
    /// </summary>
    static void GuardExistingModel(TrainOptionsCli o)
    {
        if (File.Exists(o.Out)) throw new PrunerZeroException($"--out {o.Out} is a file, not a folder");
        if (!Directory.Exists(o.Out)) return;
        // Any checkpoint file (config, weights, shard index, tokenizer or generation files): the same list as VerbPaths'.
        bool hasModel = PathSafety.CheckpointFilesIn(o.Out).Count > 0;
        bool resumable = File.Exists(Path.Combine(o.Out, "checkpoint", "state.json"));
        if (o.Resume && !resumable && hasModel)
            throw new PrunerZeroException($"--resume: {o.Out} holds a model but no training checkpoint (checkpoint/state.json) to continue; training would overwrite it: choose another --out");
        if (!o.Resume && (hasModel || resumable))
            throw new PrunerZeroException($"--out {o.Out} already holds a model{(resumable ? " and a training checkpoint (continue it with --resume)" : "")}; training would overwrite it: choose an empty or new folder");
    }
}

/// <summary>Log lines that do not collide with an in-place progress line.</summary>
public sealed class ProgressAwareWriter(ProgressLine progress, TextWriter inner) : TextWriter
{
    public override System.Text.Encoding Encoding => inner.Encoding;
    public override void WriteLine(string? value)
    {
        progress.Done();
        inner.WriteLine(value);
    }
    public override void Write(char value) => inner.Write(value);
}
