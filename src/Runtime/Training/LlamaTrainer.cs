using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Training;

public sealed record TrainOptions
{
    public required string OutDir { get; init; }
    public required IReadOnlyList<string> TrainFiles { get; init; }
    public string Preset { get; init; } = "tiny";
    public int Seed { get; init; } = 1;
    public int? Steps { get; init; }
    public double? Minutes { get; init; }
    public bool Resume { get; init; }
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>Peak learning rate (default: the preset's).</summary>
    public double? LearningRate { get; init; }
    /// <summary>Open every training sequence with BOS (then seqlen − 1 tokens of a random window): the first position is always the same token, where attention sinks and massive activations form.</summary>
    public bool BosFirst { get; init; }
    /// <summary>Every this many steps, also save a loadable model (HF layout) under OUT/snapshots/step-NNNNNN.</summary>
    public int? SnapshotEvery { get; init; }
}

/// <summary>Model shapes the train verb knows, sized for this project's 2-core machines.</summary>
public sealed record TrainPreset(string Name, int Vocab, int Hidden, int Intermediate, int Layers, int Heads, int KvHeads,
    int Seqlen, int Batch, int Steps, double LearningRate)
{
    public static readonly Dictionary<string, TrainPreset> All = new()
    {
        // ~2.4 M parameters, narrow (width 192) and trained on ~3.6 epochs of the text so that its weights are
        // used and pruning has a clear signal; GQA with half as many key/value heads as heads.
        // 850 steps × 16 × 256 tokens (3.5 M tokens) take about 27 minutes on 2 cores.
        ["tiny"] = new("tiny", 4096, 192, 512, 4, 6, 3, 256, 16, 850, 3e-3),
        // A second model for transfer checks (issue 15): another width (128 / 352, 4 heads, 2 key/value heads) with
        // tiny's vocabulary, depth and context, so a metric searched on tiny is re-checked on a model it never saw.
        ["narrow"] = new("narrow", 4096, 128, 352, 4, 4, 2, 256, 16, 850, 3e-3),
        // For tests and smoke runs: seconds, not minutes.
        ["micro"] = new("micro", 320, 32, 64, 2, 4, 2, 64, 4, 20, 3e-3),
    };

    public LlamaConfig Config(int vocab) => new()
    {
        Architecture = "LlamaForCausalLM", HiddenSize = Hidden, IntermediateSize = Intermediate, NumLayers = Layers,
        NumHeads = Heads, NumKvHeads = KvHeads, HeadDim = Hidden / Heads, RmsNormEps = 1e-5, RopeTheta = 10000,
        MaxPositionEmbeddings = Seqlen, VocabSize = vocab, TieWordEmbeddings = true, TorchDtype = "float32",
        BosTokenId = vocab - 2, EosTokenId = vocab - 1,
    };
}

/// <summary>
/// Trains a LLaMA-architecture model from scratch: byte-level BPE tokenizer, AdamW with warm-up and cosine
/// decay, gradient clipping. Deterministic for a seed: initialisation from torch.manual_seed, and the
/// batch of step s drawn from Random(seed, s), so a resumed run draws the same batches.
/// </summary>
public static class LlamaTrainer
{
    public static void Train(TrainOptions o, IProgress<string> progress, TextWriter log)
    {
        if (!TrainPreset.All.TryGetValue(o.Preset, out var preset))
            throw new PrunerZeroException($"unknown {UserError.P("config")} '{o.Preset}' (known: {string.Join(", ", TrainPreset.All.Keys)})");
        int steps = o.Steps ?? preset.Steps;
        double peakLr = o.LearningRate ?? preset.LearningRate;
        if (!(peakLr > 0 && double.IsFinite(peakLr))) throw new PrunerZeroException($"{UserError.P("lr")} must be positive, got {peakLr}");
        if (o.SnapshotEvery is < 1) throw new PrunerZeroException($"{UserError.P("snapshot_every")} must be at least 1, got {o.SnapshotEvery}");
        // What fixes the trajectory: a resume with other values would silently train a different model.
        var recipe = new JsonObject { ["preset"] = preset.Name, ["seed"] = o.Seed, ["steps"] = steps, ["lr"] = peakLr, ["bos_first"] = o.BosFirst };
        Directory.CreateDirectory(o.OutDir);
        string ckptDir = Path.Combine(o.OutDir, "checkpoint");
        var texts = o.TrainFiles.SelectMany(LoadTexts).ToList();

        // Tokenizer: trained once; a resumed run reuses the saved one.
        if (!(o.Resume && File.Exists(Path.Combine(o.OutDir, "tokenizer.json"))))
        {
            var sw = Stopwatch.StartNew();
            var bpe = BpeTrainer.Train(texts, preset.Vocab, progress);
            BpeTrainer.Save(bpe, o.OutDir, preset.Seqlen);
            log.WriteLine($"tokenizer: {bpe.Vocab.Count} tokens, {bpe.Merges.Count} merges ({sw.Elapsed.TotalSeconds:0.0} s)");
        }
        var config = preset.Config(preset.Vocab);
        File.WriteAllText(Path.Combine(o.OutDir, "config.json"), config.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var tokenizer = TextTokenizer.Load(o.OutDir, config);
        var stream = texts.SelectMany(tokenizer.Encode).ToArray();   // BOS at the start of each document group
        log.WriteLine($"training data: {stream.Length} tokens from {string.Join(", ", o.TrainFiles.Select(Path.GetFileName))}");
        if (stream.Length <= preset.Seqlen) throw new PrunerZeroException("training text is shorter than one window");

        manual_seed(o.Seed);
        using var model = Initialise(config);
        var parameters = model.NamedTensors().ToList();
        using var optimizer = new AdamW(
            [new AdamW.Group(parameters.Where(p => p.Tensor.dim() == 2).ToList(), WeightDecay: 0.1),
             new AdamW.Group(parameters.Where(p => p.Tensor.dim() < 2).ToList(), WeightDecay: 0.0)],
            beta1: 0.9, beta2: 0.95);

        int start = 0;
        var losses = new List<(int Step, double Loss)>();
        if (o.Resume && File.Exists(Path.Combine(ckptDir, "state.json")))
        {
            var state = JsonNode.Parse(File.ReadAllText(Path.Combine(ckptDir, "state.json")))!;
            if (state["recipe"] is JsonObject trainedWith && trainedWith.ToJsonString() != recipe.ToJsonString())
                throw new PrunerZeroException($"{UserError.P("resume")}: the checkpoint was trained with {trainedWith.ToJsonString()}, this command asks for {recipe.ToJsonString()}; pass the same {UserError.P("config")}/{UserError.P("seed")}/{UserError.P("steps")}/{UserError.P("lr")}/{UserError.P("bos_first")}");
            start = state["step"]!.GetValue<int>();
            using (no_grad())
            {
                var (entries, dataStart) = SafeTensors.ReadHeader(Path.Combine(ckptDir, "model.safetensors"));
                var byName = entries.ToDictionary(e => e.Name);
                foreach (var (name, t) in model.NamedTensors())
                {
                    using var saved = SafeTensors.Read(byName[name], dataStart);
                    t.copy_(saved);
                }
            }
            string moments = Path.Combine(ckptDir, "optimizer.safetensors");
            if (!File.Exists(moments))
                throw new PrunerZeroException($"{UserError.P("resume")}: {ckptDir} has no optimizer.safetensors (a checkpoint of an earlier version of this program keeps TorchSharp's optimizer.bin, which is no longer read): train again without {UserError.P("resume")}");
            optimizer.Load(moments);
            losses = state["losses"]!.AsArray().Select(x => (x![0]!.GetValue<int>(), x[1]!.GetValue<double>())).ToList();
            log.WriteLine($"resumed at step {start}/{steps}");
        }

        var clock = Stopwatch.StartNew();
        long tokensPerStep = (long)preset.Batch * preset.Seqlen;
        int warmup = Math.Max(1, steps / 20);
        double ema = double.NaN;
        for (int step = start; step < steps; step++)
        {
            double lr = step < warmup
                ? peakLr * (step + 1) / warmup
                : peakLr * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * (step - warmup) / Math.Max(1, steps - warmup))));

            using (var scope = NewDisposeScope())
            {
                var rng = new Random(StableSeed.ForRandom(o.Seed, step));   // the same windows in every process
                var batch = new long[preset.Batch * preset.Seqlen];
                int lead = o.BosFirst ? 1 : 0;
                for (int b = 0; b < preset.Batch; b++)
                {
                    int s0 = rng.Next(0, stream.Length - preset.Seqlen);
                    if (o.BosFirst) batch[b * preset.Seqlen] = config.BosTokenId!.Value;
                    for (int t = lead; t < preset.Seqlen; t++) batch[b * preset.Seqlen + t] = stream[s0 + t - lead];
                }
                optimizer.ZeroGrad();
                var loss = model.NextTokenLoss(tensor(batch, [preset.Batch, preset.Seqlen]));
                loss.backward();
                optimizer.ClipGradNorm(1.0);
                optimizer.Step(lr);
                double l = loss.item<float>();
                if (!double.IsFinite(l)) throw new PrunerZeroException($"training diverged at step {step} (loss {l})");
                ema = double.IsNaN(ema) ? l : 0.95 * ema + 0.05 * l;
                losses.Add((step + 1, l));
            }

            int done = step + 1 - start;
            double tps = done * tokensPerStep / clock.Elapsed.TotalSeconds;
            double eta = (steps - step - 1) * tokensPerStep / tps;
            progress.Report($"step {step + 1}/{steps}  loss {ema:0.000}  lr {lr:0.00e0}  {tps:0} tokens/s  ETA {TimeSpan.FromSeconds(eta):hh\\:mm\\:ss}");

            bool last = step + 1 == steps;
            bool outOfTime = o.Minutes is double m && clock.Elapsed.TotalMinutes >= m;
            if (o.SnapshotEvery is int every && (step + 1) % every == 0 && !last)
                Checkpoint.Save(model, Path.Combine(o.OutDir, "snapshots", $"step-{step + 1:000000}"), o.OutDir, ScalarType.Float32);
            if ((step + 1) % o.CheckpointEvery == 0 || last || outOfTime)
            {
                SaveCheckpoint(model, optimizer, ckptDir, step + 1, losses, recipe);
                if (outOfTime && !last)
                {
                    log.WriteLine($"stopped by --minutes after step {step + 1}/{steps}; continue with --resume");
                    return;
                }
            }
        }

        Checkpoint.Save(model, o.OutDir, null, ScalarType.Float32);
        double final = losses.Skip(Math.Max(0, losses.Count - 50)).Average(x => x.Loss);
        File.WriteAllText(Path.Combine(o.OutDir, "training.json"), new JsonObject
        {
            ["preset"] = preset.Name, ["seed"] = o.Seed, ["steps"] = steps, ["batch"] = preset.Batch, ["seqlen"] = preset.Seqlen,
            ["lr"] = peakLr, ["bos_first"] = o.BosFirst,
            ["tokens_seen"] = steps * tokensPerStep, ["train_tokens"] = stream.Length,
            ["final_loss_mean_last_50"] = final, ["parameters"] = config.ParameterCount,
            ["seconds"] = clock.Elapsed.TotalSeconds,   // this process only; a resumed run counts from its resume
            ["losses"] = new JsonArray(losses.Select(x => (JsonNode)new JsonArray(x.Step, x.Loss)).ToArray()),
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
        log.WriteLine($"trained {steps} steps, {steps * tokensPerStep} tokens seen, final loss {final:0.0000} (mean of the last 50 steps)");
    }

    internal static IEnumerable<string> LoadTexts(string path) =>
        path.EndsWith(".raw", StringComparison.OrdinalIgnoreCase)
            ? [TextData.JoinRows(TextData.WikiTextRows(path))]
            : TextData.CalibrationDocuments(path);

    /// <summary>GPT-2 style initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2L), norms at one.</summary>
    static LlamaModel Initialise(LlamaConfig c)
    {
        double residual = 0.02 / Math.Sqrt(2 * c.NumLayers);
        // torch.normal(0, std) is randn · std (TorchSharp's normal makes Scalars it never disposes).
        // Plain leaf tensors with requires_grad (the trainer's AdamW takes tensors): a TorchSharp Parameter moves the
        // handle out of the tensor it is made from without lowering torch.Tensor.TotalCount, which the tests read.
        Tensor P(double std, params long[] shape) => randn(shape).TimesInPlace(std).requires_grad_(true).DetachFromDisposeScope();
        Tensor Ones(long n) => ones(n).requires_grad_(true).DetachFromDisposeScope();
        long hd = c.NumHeads * c.HeadDim, kvd = c.NumKvHeads * c.HeadDim;
        var embed = P(0.02, c.VocabSize, c.HiddenSize);
        var blocks = Enumerable.Range(0, c.NumLayers).Select(_ => new LlamaBlock
        {
            InputNorm = Ones(c.HiddenSize),
            Q = P(0.02, hd, c.HiddenSize), K = P(0.02, kvd, c.HiddenSize), V = P(0.02, kvd, c.HiddenSize),
            O = P(residual, c.HiddenSize, hd),
            PostNorm = Ones(c.HiddenSize),
            Gate = P(0.02, c.IntermediateSize, c.HiddenSize), Up = P(0.02, c.IntermediateSize, c.HiddenSize),
            Down = P(residual, c.HiddenSize, c.IntermediateSize),
        }).ToList();
        return new LlamaModel(c, embed, blocks, Ones(c.HiddenSize), null);
    }

    static void SaveCheckpoint(LlamaModel model, AdamW optimizer, string dir, int step, List<(int Step, double Loss)> losses, JsonObject recipe)
    {
        Directory.CreateDirectory(dir);
        using (var scope = NewDisposeScope())
            SafeTensors.Write(Path.Combine(dir, "model.safetensors"), model.NamedTensors().Select(nt => (nt.Name, nt.Tensor.detach())).ToList());
        optimizer.Save(Path.Combine(dir, "optimizer.safetensors"));
        // state.json last: it names a step only once the files it depends on are complete.
        File.WriteAllText(Path.Combine(dir, "state.json.tmp"), new JsonObject
        {
            ["step"] = step,
            ["recipe"] = recipe.DeepClone(),
            ["losses"] = new JsonArray(losses.Select(x => (JsonNode)new JsonArray(x.Step, x.Loss)).ToArray()),
        }.ToJsonString());
        File.Move(Path.Combine(dir, "state.json.tmp"), Path.Combine(dir, "state.json"), overwrite: true);
    }
}
