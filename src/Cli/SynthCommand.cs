using CommandLine;
using PrunerZero.Runtime;

namespace PrunerZero.Cli;

[Verb("synth", HelpText = "Write a random checkpoint with a real model's exact shapes (for scale tests, benchmarks and sizing a machine).")]
public sealed class SynthOptions
{
    [Option("preset", Required = true, HelpText = "llama-7b | llama-2-13b | llama-3-8b | llama-3.1-8b | mistral-7b | qwen2.5-7b | qwen3-8b | tiny.")]
    public string Preset { get; set; } = "";

    [Option("layers", HelpText = "Decoder layers (default: the preset's).")]
    public int? Layers { get; set; }

    [Option("dtype", Default = "bf16", HelpText = "bf16, f16 or f32.")]
    public string Dtype { get; set; } = "bf16";

    [Option("seed", Default = 0, HelpText = "Seed of the weights (the same seed gives the same checkpoint).")]
    public int Seed { get; set; }

    [Option("out", Required = true, HelpText = "Output folder.")]
    public string Out { get; set; } = "";
}

public static class SynthCommand
{
    /// <summary>What synth writes: the preset (its shapes), layers, dtype, seed and folder.</summary>
    public sealed record SynthPlan(SyntheticCheckpoint.Preset Preset, int? Layers, string Dtype, int Seed, string Out);

    public static SynthPlan Plan(SynthOptions o) => new(SyntheticCheckpoint.Find(o.Preset), o.Layers, o.Dtype, o.Seed, o.Out);

    public static int Run(SynthOptions o)
    {
        var preset = Plan(o).Preset;
        // The one output rule (VerbPaths): --out is not the tokenizer's source and holds no checkpoint files; a file
        // or a read-only folder is refused before the first tensor.
        new VerbPaths().InputFolder("tokenizer source", Defaults.Model(null)).OutputCheckpoint("--out", o.Out);
        var progress = new ProgressLine();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var cfg = SyntheticCheckpoint.Write(preset, o.Layers, o.Dtype, o.Seed, o.Out, Defaults.Model(null), progress);
        progress.Done();
        long bytes = Checkpoint.Entries(o.Out).Sum(e => e.Entry.End - e.Entry.Begin);
        Console.WriteLine($"synth {preset.Name}: {cfg.NumLayers} layers, {cfg.ParameterCount / 1e6:0.0} M parameters, {cfg.TorchDtype}, {LlamaModel.Gib(bytes)} -> {o.Out} ({sw.Elapsed.TotalSeconds:0.0} s)");
        return 0;
    }
}
