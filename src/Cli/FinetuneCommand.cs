using CommandLine;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Training;

namespace PrunerZero.Cli;

[Verb("finetune", HelpText = "LoRA recovery fine-tuning of a (pruned) checkpoint; on a sparse base the update is trained masked by W != 0; writes a PEFT adapter (and with --merge masked a merged checkpoint that keeps every zero and computes the trained forward).")]
public sealed class FinetuneOptionsCli
{
    [Option("model", HelpText = "Checkpoint folder to fine-tune (default: the embedded model); its weights stay frozen in their dtype.")]
    public string? Model { get; set; }

    [Option("out", Required = true, HelpText = "Output folder: adapter_config.json + adapter_model.safetensors (PEFT layout), finetune.json, checkpoint/.")]
    public string Out { get; set; } = "";

    [Option("rank", Default = 8, HelpText = "LoRA rank r (the paper's and Wanda's 8).")]
    public int Rank { get; set; }

    [Option("alpha", Default = 16.0, HelpText = "lora_alpha; the update is scaled by alpha / r (Wanda's 16).")]
    public double Alpha { get; set; }

    [Option("dropout", Default = 0.05, HelpText = "lora_dropout on the adapter's input (Wanda's 0.05).")]
    public double Dropout { get; set; }

    [Option("targets", Separator = ',', HelpText = "Adapted linears: any of q,k,v,o,gate,up,down (default: q,v, Wanda's lora_ft).")]
    public IEnumerable<string>? Targets { get; set; }

    [Option("data", Separator = ',', HelpText = "Training text: C4-style jsonl (default: the shipped C4 sample); never the evaluation text.")]
    public IEnumerable<string>? Data { get; set; }

    [Option("dataset", HelpText = "The evaluation text (--eval-every measures on it; training on it is refused): wikitext2 (default) or a file.")]
    public string? Dataset { get; set; }

    [Option("seqlen", HelpText = "Tokens per training sequence (default: min(1024, max_position_embeddings); Wanda's block_size 1024).")]
    public int? Seqlen { get; set; }

    [Option("batch", Default = 1, HelpText = "Sequences per micro-batch (Wanda's 1).")]
    public int Batch { get; set; }

    [Option("grad-accum", Default = 1, HelpText = "Micro-batches per optimizer step.")]
    public int GradAccum { get; set; }

    [Option("lr", Default = 1e-4, HelpText = "Peak learning rate (Wanda's 1e-4); linear warm-up, then linear decay to 0.")]
    public double Lr { get; set; }

    [Option("steps", HelpText = "Optimizer steps (default: one pass over the data).")]
    public int? Steps { get; set; }

    [Option("tokens", HelpText = "Train on about this many tokens instead of --steps.")]
    public long? Tokens { get; set; }

    [Option("warmup", Default = 0, HelpText = "Warm-up steps (Hugging Face Trainer's default 0).")]
    public int Warmup { get; set; }

    [Option("seed", Default = 1, HelpText = "Fixes A's initialisation, the data order and the dropout masks.")]
    public int Seed { get; set; }

    [Option("eval-every", HelpText = "Perplexity on --dataset before training, every N steps and at the end (finetune.json, perplexity.png).")]
    public int? EvalEvery { get; set; }

    [Option("checkpoint-every", Default = 100, HelpText = "Save the adapter and optimizer state every N steps (OUT/checkpoint).")]
    public int CheckpointEvery { get; set; }

    [Option("resume", HelpText = "Continue from OUT/checkpoint (after any stop, kill -9 included) to the same adapter as an uninterrupted run.")]
    public bool Resume { get; set; }

    [Option("merge", HelpText = "masked: also write OUT/merged, the base with W' = (W + alpha/r·B·A) ⊙ (W ≠ 0) in its dtype.")]
    public string? Merge { get; set; }
}

public static class FinetuneCommand
{
    static readonly string[] Writes = [LoraConfig.ConfigFile, LoraConfig.WeightsFile, LoraFinetune.ReportFile, "perplexity.png"];

    public static int Run(FinetuneOptionsCli o)
    {
        var plan = Plan(o);
        var paths = new VerbPaths().InputFolder("--model", plan.ModelDir).InputFile("--dataset", plan.EvalDataset);
        foreach (var f in plan.DataFiles) paths.InputFile("--data", f);
        paths.NoInputInside("--out", o.Out);
        GuardExisting(o);
        paths.OutputFolder("--out", o.Out, Writes, subfolder: LoraFinetune.CheckpointDir);
        if (plan.MergeMasked) paths.OutputCheckpoint("--merge", Path.Combine(o.Out, LoraFinetune.MergedDir));
        var progress = new ProgressLine();
        var result = LoraFinetune.Run(plan, progress, new ProgressAwareWriter(progress, Console.Error));
        progress.Done();
        if (result.Finished && result.Evals.Count > 1) PlotPerplexity(result.Evals, Path.Combine(o.Out, "perplexity.png"));
        return 0;
    }

    /// <summary>The fine-tuning run the options describe.</summary>
    public static FinetuneOptions Plan(FinetuneOptionsCli o) => new()
    {
        ModelDir = Defaults.Model(o.Model),
        OutDir = o.Out,
        Lora = new LoraConfig(o.Rank, o.Alpha, o.Dropout, LoraConfig.ParseTargets(o.Targets?.ToList() is { Count: > 0 } t ? t : ["q", "v"], "--targets")),
        DataFiles = o.Data?.ToList() is { Count: > 0 } d ? d : [Defaults.Find(Defaults.Calibration)],
        EvalDataset = Defaults.Dataset(o.Dataset),
        Seqlen = o.Seqlen, Batch = o.Batch, GradAccum = o.GradAccum, LearningRate = o.Lr, Steps = o.Steps, Tokens = o.Tokens,
        Warmup = o.Warmup, Seed = o.Seed, EvalEvery = o.EvalEvery, CheckpointEvery = o.CheckpointEvery, Resume = o.Resume,
        MergeMasked = o.Merge switch
        {
            null => false,
            "masked" => true,
            _ => throw new PrunerZeroException($"--merge '{o.Merge}': the one merge is 'masked' (W' = (W + alpha/r·B·A) ⊙ mask, so sparsity is kept)"),
        },
    };

    /// <summary>An adapter folder is never trained over: only --resume of the run that left OUT/checkpoint/state.json may write to it.</summary>
    static void GuardExisting(FinetuneOptionsCli o)
    {
        if (File.Exists(o.Out)) throw new PrunerZeroException($"--out {o.Out} is a file, not a folder");
        if (!Directory.Exists(o.Out)) return;
        bool hasAdapter = Writes.Any(w => File.Exists(Path.Combine(o.Out, w))) || PathSafety.CheckpointFilesIn(o.Out).Count > 0;
        bool resumable = File.Exists(Path.Combine(o.Out, LoraFinetune.CheckpointDir, "state.json"));
        if (o.Resume && !resumable && hasAdapter)
            throw new PrunerZeroException($"--resume: {o.Out} holds an adapter or model but no fine-tuning checkpoint (checkpoint/state.json) to continue; choose another --out");
        if (!o.Resume && (hasAdapter || resumable))
            throw new PrunerZeroException($"--out {o.Out} already holds {(resumable ? "a fine-tuning checkpoint (continue it with --resume)" : "an adapter or model")}; fine-tuning would overwrite it: choose an empty or new folder");
    }

    /// <summary>Perplexity on the evaluation text against the step, from the run's evaluations.</summary>
    public static void PlotPerplexity(IReadOnlyList<(int Step, double Perplexity)> evals, string path)
    {
        var plt = new ScottPlot.Plot();
        var s = plt.Add.Scatter(evals.Select(e => (double)e.Step).ToArray(), evals.Select(e => e.Perplexity).ToArray());
        s.LegendText = "LoRA fine-tuning";
        plt.Title("Recovery fine-tuning: perplexity against steps");
        plt.XLabel("optimizer step");
        plt.YLabel("perplexity");
        plt.SavePng(path, 900, 540);
    }
}
