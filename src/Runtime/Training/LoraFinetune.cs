using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Training;

/// <summary>What one LoRA recovery fine-tuning run does (see <see cref="LoraFinetune"/>).</summary>
public sealed record FinetuneOptions
{
    public required string ModelDir { get; init; }
    public required string OutDir { get; init; }
    public required LoraConfig Lora { get; init; }
    /// <summary>Training text: C4-style json / jsonl documents (a `text` field), a wiki.*.raw file, or plain text.</summary>
    public required IReadOnlyList<string> DataFiles { get; init; }
    /// <summary>The evaluation text: never trained on (a data file with its bytes is refused); --eval-every measures on it.</summary>
    public required string EvalDataset { get; init; }
    /// <summary>Tokens per training sequence (default: min(1024, max_position_embeddings), Wanda's block_size 1024).</summary>
    public int? Seqlen { get; init; }
    public int Batch { get; init; } = 1;
    public int GradAccum { get; init; } = 1;
    public double LearningRate { get; init; } = 1e-4;
    /// <summary>Optimizer steps (default: one pass over the data, or <see cref="Tokens"/>).</summary>
    public int? Steps { get; init; }
    public long? Tokens { get; init; }
    public int Warmup { get; init; }
    public int Seed { get; init; } = 1;
    public int? EvalEvery { get; init; }
    public int CheckpointEvery { get; init; } = 100;
    public bool Resume { get; init; }
    /// <summary>Also write OUT/merged: the base with (W + s·B·A) ⊙ mask in its dtype.</summary>
    public bool MergeMasked { get; init; }
    /// <summary>Stop after this step without a checkpoint, as if killed: for tests of --resume.</summary>
    public int? StopAfter { get; init; }
}

public sealed record FinetuneResult(int Steps, long TokensSeen, double TrainSeconds, double TokensPerSecond,
    IReadOnlyList<(int Step, double Loss)> Losses, IReadOnlyList<(int Step, double Perplexity)> Evals, bool Finished);

/// <summary>
/// LoRA recovery fine-tuning of a (pruned) checkpoint, as the paper and Wanda's lora_ft do after pruning: the base
/// frozen in its dtype, adapters (A, B float32) trained with the autoregressive loss by AdamW (torch's defaults
/// β = (0.9, 0.999), ε = 1e-8, no weight decay: Hugging Face Trainer's), linear warm-up then linear decay to zero
/// (Trainer's "linear" schedule), gradients clipped at norm 1. A sparse base (a zero in an adapted linear) trains the
/// update masked by its nonzeros (<see cref="LoraAdapters.MaskUpdate"/>), so the trained model is the --merge masked one.
/// Data: the documents tokenized into one stream cut into blocks of seqlen (run_clm's group_texts), each epoch in the
/// order of a permutation drawn from (seed, epoch); dropout masks from (seed, step, micro-batch, block). Activation
/// checkpointing per block (<see cref="CheckpointedBackward"/>). So the batches
/// and masks of a step are the same in every process and a resumed run ends with the same adapter as one that
/// was never stopped. Checkpoints: OUT/checkpoint/step-N/ (adapter, AdamW moments), then state.json names it
/// (renamed into place), then older steps are deleted; a kill at any moment leaves a complete one named.
/// </summary>
public static class LoraFinetune
{
    public const string CheckpointDir = "checkpoint";
    public const string MergedDir = "merged";
    public const string ReportFile = "finetune.json";

    public static FinetuneResult Run(FinetuneOptions o, IProgress<string> progress, TextWriter log)
    {
        o.Lora.Check();
        if (o.Batch < 1) throw new PrunerZeroException($"--batch must be at least 1, got {o.Batch}");
        if (o.GradAccum < 1) throw new PrunerZeroException($"--grad-accum must be at least 1, got {o.GradAccum}");
        if (!(o.LearningRate > 0 && double.IsFinite(o.LearningRate))) throw new PrunerZeroException($"--lr must be positive, got {o.LearningRate}");
        if (o.Steps is < 1) throw new PrunerZeroException($"--steps must be at least 1, got {o.Steps}");
        if (o.Tokens is < 1) throw new PrunerZeroException($"--tokens must be at least 1, got {o.Tokens}");
        if (o.Steps != null && o.Tokens != null) throw new PrunerZeroException("give --steps or --tokens, not both");
        if (o.Warmup < 0) throw new PrunerZeroException($"--warmup must be at least 0, got {o.Warmup}");
        if (o.EvalEvery is < 1) throw new PrunerZeroException($"--eval-every must be at least 1, got {o.EvalEvery}");
        if (o.CheckpointEvery < 1) throw new PrunerZeroException($"--checkpoint-every must be at least 1, got {o.CheckpointEvery}");
        if (o.DataFiles.Count == 0) throw new PrunerZeroException("--data: no training files");
        RefuseEvaluationText(o.DataFiles, o.EvalDataset);

        var config = LlamaConfig.Load(Path.Combine(Checkpoint.RequireDirectoryAnd(o.ModelDir), "config.json"));
        var tokenizer = TextTokenizer.Load(o.ModelDir, config);
        int seqlen = o.Seqlen ?? Math.Min(1024, config.MaxPositionEmbeddings);
        if (seqlen < 2) throw new PrunerZeroException($"--seqlen must be at least 2, got {seqlen}");
        if (seqlen > config.MaxPositionEmbeddings)
            throw new PrunerZeroException($"--seqlen {seqlen} exceeds the model's max_position_embeddings {config.MaxPositionEmbeddings}");
        var stream = o.DataFiles.SelectMany(LlamaTrainer.LoadTexts).SelectMany(tokenizer.Encode).ToArray();
        Corpus.CheckTokenIds(stream, config.VocabSize, string.Join(", ", o.DataFiles));
        int blocks = stream.Length / seqlen;
        if (blocks == 0) throw new PrunerZeroException($"the training text ({stream.Length} tokens) is shorter than one sequence of {seqlen}");
        long tokensPerStep = (long)o.Batch * o.GradAccum * seqlen;
        int steps = o.Steps ?? (int)Math.Max(1, o.Tokens is long t ? (t + tokensPerStep - 1) / tokensPerStep : (blocks + o.Batch * o.GradAccum - 1) / (o.Batch * o.GradAccum));
        if (o.Warmup >= steps && o.Warmup > 0) throw new PrunerZeroException($"--warmup {o.Warmup} must be fewer than the {steps} steps");
        log.WriteLine($"training data: {stream.Length} tokens in {blocks} sequences of {seqlen} from {string.Join(", ", o.DataFiles.Select(Path.GetFileName))}; {steps} steps of {tokensPerStep} tokens ({(double)steps * o.Batch * o.GradAccum / blocks:0.00} epochs)");

        int[]? evalTokens = null;
        int evalSeqlen = Perplexity.DefaultSeqlen(config);
        long evalBytes = 0;
        if (o.EvalEvery != null)
        {
            (evalTokens, evalBytes) = Corpus.Tokenize(o.EvalDataset, tokenizer, progress);
            Corpus.CheckTokenIds(evalTokens, config.VocabSize, o.EvalDataset);
            Perplexity.WindowCount(evalTokens.Length, evalSeqlen, o.EvalDataset);
        }

        // What fixes the trajectory: a resume with other values would silently train another adapter.
        var recipe = new JsonObject
        {
            ["model"] = ContentHash.OfCheckpoint(o.ModelDir),
            ["data"] = new JsonArray(o.DataFiles.Select(f => (JsonNode)ContentHash.OfFile(f)).ToArray()),
            ["r"] = o.Lora.Rank, ["alpha"] = o.Lora.Alpha, ["dropout"] = o.Lora.Dropout,
            ["targets"] = string.Join(",", o.Lora.Targets.Select(LoraConfig.ShortName)),
            ["seqlen"] = seqlen, ["batch"] = o.Batch, ["grad_accum"] = o.GradAccum, ["lr"] = o.LearningRate,
            ["steps"] = steps, ["warmup"] = o.Warmup, ["seed"] = o.Seed,
        };

        using var model = Checkpoint.Load(o.ModelDir, progress, keepDtype: true);
        using var lora = LoraAdapters.Create(model, o.Lora, o.Seed);
        using var optimizer = new AdamW([new AdamW.Group(lora.Named().ToList(), WeightDecay: 0.0)], beta1: 0.9, beta2: 0.999, eps: 1e-8);
        // A sparse base (zeros in an adapted linear) trains the update masked by its nonzeros, so the trained forward is
        // that of the --merge masked checkpoint; the adapter records it (safetensors metadata) for eval --adapter.
        int masked = LoraAdapters.HasZeros(model, o.Lora) ? lora.MaskUpdate(model) : 0, targetLinears = model.Blocks.Count * o.Lora.Targets.Count;
        recipe["update_mask"] = masked > 0 ? LoraAdapters.UpdateMaskValue : "none";
        log.WriteLine(masked > 0
            ? $"update mask: the base is sparse, so {masked} of {targetLinears} target linears train y = W·x + alpha/r·((B·A) ⊙ (W ≠ 0))·x (the forward of the --merge masked checkpoint{(masked < targetLinears ? $"; the other {targetLinears - masked} have no zero" : "")})"
            : "update mask: none (no target linear of the base has a zero); y = W·x + alpha/r·B·A·x");
        lora.Attach(model);
        long trainable = lora.Named().Sum(nt => nt.Tensor.NumberOfElements);
        // Memory: the frozen base as stored, four float32 copies of the adapters (value, gradient, two moments), and with
        // activation checkpointing one block's float32 weights and activations (or the float32 head) plus every block's input.
        long adapterBytes = 4 * 4 * lora.Named().Sum(nt => nt.Tensor.NumberOfElements);
        long blockBytes = 4 * model.Blocks[0].All.Sum(w => w.NumberOfElements);
        // A masked update materialises (B·A) ⊙ M in float32 for each masked target of the block being back-propagated (and its gradient).
        long stepBytes = Math.Max(blockBytes * (masked > 0 ? 3 : 1), 4 * model.LmHead.NumberOfElements) + o.Batch * LlamaModel.ActivationBytes(config, seqlen)
            + 4L * o.Batch * seqlen * config.HiddenSize * config.NumLayers;
        log.WriteLine($"memory: {LlamaModel.Gib(model.WeightBytes)} of frozen weights + {LlamaModel.Gib(adapterBytes)} adapters, gradients and AdamW moments"
            + (masked > 0 ? $" + {LlamaModel.Gib(lora.MaskBytes)} update masks" : "") + $" + about {LlamaModel.Gib(stepBytes)} for one step (activation checkpointing per block)");
        log.WriteLine($"LoRA r={o.Lora.Rank} alpha={o.Lora.Alpha} dropout={o.Lora.Dropout} on {string.Join(",", o.Lora.Targets.Select(LoraConfig.ModuleName))}: {trainable} trainable parameters (float32); base frozen in {model.WeightDtype}");

        string ckptDir = Path.Combine(o.OutDir, CheckpointDir);
        int start = 0;
        var losses = new List<(int Step, double Loss)>();
        var evals = new List<(int Step, double Perplexity)>();
        double trainSeconds = 0;
        if (o.Resume && File.Exists(Path.Combine(ckptDir, "state.json")))
        {
            var state = JsonNode.Parse(File.ReadAllText(Path.Combine(ckptDir, "state.json")))!;
            if (state["recipe"] is JsonObject trainedWith && trainedWith.ToJsonString() != recipe.ToJsonString())
                throw new PrunerZeroException($"--resume: the checkpoint was trained with {trainedWith.ToJsonString()}, this command asks for {recipe.ToJsonString()}; pass the same model, data and options");
            start = state["step"]!.GetValue<int>();
            string stepDir = Path.Combine(ckptDir, state["dir"]!.GetValue<string>());
            using (var saved = LoraAdapters.Load(stepDir, model))
            using (no_grad())
                foreach (var ((_, mine), (_, theirs)) in lora.Named().Zip(saved.Named())) mine.copy_(theirs);
            optimizer.Load(Path.Combine(stepDir, "optimizer.safetensors"));
            losses = state["losses"]!.AsArray().Select(x => (x![0]!.GetValue<int>(), x[1]!.GetValue<double>())).ToList();
            evals = state["evals"]!.AsArray().Select(x => (x![0]!.GetValue<int>(), x[1]!.GetValue<double>())).ToList();
            trainSeconds = state["train_seconds"]!.GetValue<double>();
            log.WriteLine($"resumed at step {start}/{steps}");
        }
        else if (o.Resume) log.WriteLine($"--resume: no checkpoint in {ckptDir} yet; starting at step 0");

        void Evaluate(int step)
        {
            if (evalTokens is null || evals.Any(e => e.Step == step)) return;
            var r = Perplexity.Evaluate(model, o.ModelDir, evalTokens, evalBytes, Path.GetFileName(o.EvalDataset), evalSeqlen, null, progress);
            evals.Add((step, r.Perplexity));
            log.WriteLine($"step {step}: perplexity {r.Perplexity:0.0000} on {Path.GetFileName(o.EvalDataset)} ({r.Windows} windows of {evalSeqlen})");
        }
        if (start == 0) Evaluate(0);

        var order = new EpochOrder(blocks, o.Seed);
        var clock = Stopwatch.StartNew();
        double ema = double.NaN;
        bool finished = true;
        for (int step = start; step < steps; step++)
        {
            double lr = o.LearningRate * (step < o.Warmup ? (double)step / o.Warmup : (double)(steps - step) / (steps - o.Warmup));
            double stepLoss = 0;
            var sw = Stopwatch.StartNew();
            optimizer.ZeroGrad();
            for (int m = 0; m < o.GradAccum; m++)
            {
                using var scope = NewDisposeScope();
                var batch = new long[o.Batch * seqlen];
                for (int b = 0; b < o.Batch; b++)
                {
                    int block = order.Block(((long)step * o.GradAccum + m) * o.Batch + b);
                    for (int i = 0; i < seqlen; i++) batch[b * seqlen + i] = stream[(long)block * seqlen + i];
                }
                long micro = StableSeed.ForRandom(o.Seed, step);
                int mb = m;
                stepLoss += CheckpointedBackward(model, lora, tensor(batch, [o.Batch, seqlen]), o.GradAccum,
                    layer => new Generator(StableSeed.Of(micro, ((long)mb << 20) | (uint)layer) & 0x7FFF_FFFF_FFFF_FFFFUL)) / o.GradAccum;
            }
            if (!double.IsFinite(stepLoss)) throw new PrunerZeroException($"fine-tuning diverged at step {step} (loss {stepLoss})");
            optimizer.ClipGradNorm(1.0);
            optimizer.Step(lr);
            trainSeconds += sw.Elapsed.TotalSeconds;
            losses.Add((step + 1, stepLoss));
            ema = double.IsNaN(ema) ? stepLoss : 0.95 * ema + 0.05 * stepLoss;

            int done = step + 1 - start;
            double tps = done * tokensPerStep / clock.Elapsed.TotalSeconds;
            progress.Report($"step {step + 1}/{steps}  loss {ema:0.000}  lr {lr:0.00e0}  {tps:0} tokens/s  ETA {TimeSpan.FromSeconds((steps - step - 1) * tokensPerStep / tps):hh\\:mm\\:ss}");

            bool last = step + 1 == steps, stop = o.StopAfter == step + 1;
            if (o.EvalEvery is int every && ((step + 1) % every == 0 || last)) Evaluate(step + 1);
            if ((step + 1) % o.CheckpointEvery == 0 || last)
                SaveCheckpoint(lora, optimizer, o.ModelDir, ckptDir, step + 1, recipe, losses, evals, trainSeconds);
            if (stop && !last)
            {
                log.WriteLine($"stopped after step {step + 1}/{steps} (last checkpoint: step {(step + 1) / o.CheckpointEvery * o.CheckpointEvery}); continue with --resume");
                finished = false;
                break;
            }
        }
        var result = new FinetuneResult(steps, steps * tokensPerStep, trainSeconds, (steps - 0) * tokensPerStep / Math.Max(trainSeconds, 1e-9), losses, evals, finished);
        if (!finished) return result;

        lora.Save(o.OutDir, o.ModelDir);
        File.WriteAllText(Path.Combine(o.OutDir, ReportFile), new JsonObject
        {
            ["recipe"] = recipe.DeepClone(),
            ["steps"] = steps, ["tokens_seen"] = result.TokensSeen, ["train_tokens"] = stream.Length,
            ["train_seconds"] = trainSeconds, ["tokens_per_second"] = result.TokensPerSecond,
            ["losses"] = Pairs(losses), ["perplexity"] = Pairs(evals),
        }.ToJsonString());
        log.WriteLine($"fine-tuned {steps} steps, {result.TokensSeen} tokens in {trainSeconds:0.0} s of training ({result.TokensPerSecond:0} tokens/s); adapter in {o.OutDir}");

        if (o.MergeMasked)
        {
            LoraAdapters.Detach(model);
            string merged = Path.Combine(o.OutDir, MergedDir);
            var counts = lora.MergeMasked(model);
            foreach (var (layer, kind, numel, before, after) in counts)
                log.WriteLine($"merge masked: layer {layer} {kind.HfName(),-16} sparsity {100.0 * before / numel:0.0000}% -> {100.0 * after / numel:0.0000}%");
            if (counts.Any(c => c.ZerosAfter != c.ZerosBefore))
                throw new PrunerZeroException("merge masked: a layer's zero count changed (a merged weight rounded to zero in the base's dtype); nothing written");
            Checkpoint.Save(model, merged, o.ModelDir, model.WeightDtype);
            log.WriteLine($"merged checkpoint ({model.WeightDtype}) in {merged}");
        }
        return result;
    }

    /// <summary>
    /// Loss of one micro-batch (ids (B, T)) and its gradients into the adapters, divided by <paramref name="accum"/>, with
    /// activation checkpointing per block: a forward without autograd keeps only each block's input (B, T, C); then the
    /// head's backward, and from the top block down each block recomputed with autograd from its input and
    /// back-propagated, so autograd never holds more than one block (its float32 weight copy above all: 0.81 GB for a
    /// 7B block, held for every block otherwise). Each block's dropout masks come from <paramref name="dropoutFor"/>
    /// (a generator per block), so the recomputation draws the masks the first pass drew.
    /// </summary>
    public static double CheckpointedBackward(LlamaModel model, LoraAdapters lora, Tensor ids, int accum, Func<int, Generator> dropoutFor)
    {
        using var scope = NewDisposeScope();
        long t = ids.shape[1];
        var (cos, sin) = model.Rope(t);
        var inputs = new List<Tensor>();                        // block i's input (B, T, C), no graph
        Tensor BlockWithDropout(int i, Tensor x)
        {
            using var gen = dropoutFor(i);
            lora.DropoutGenerator = gen;
            try { return model.BlockForward(i, x, cos, sin); }
            finally { lora.DropoutGenerator = null; }
        }
        var h = model.EmbedTokens(ids);
        using (no_grad())
            for (int i = 0; i < model.Blocks.Count; i++)
            {
                inputs.Add(h);
                h = BlockWithDropout(i, h);
            }

        var top = h.detach().requires_grad_(true);
        var logits = model.Logits(top);
        long v = logits.shape[^1];
        var loss = nn.functional.cross_entropy(logits[.., ..^1, ..].reshape(-1, v), ids[.., 1..].reshape(-1).to(logits.device));
        double value = loss.item<float>();
        loss.DividedBy(accum).backward();
        var grad = top.grad!;
        for (int i = model.Blocks.Count - 1; i >= 0; i--)
        {
            using var blockScope = NewDisposeScope();
            var x = inputs[i].detach().requires_grad_(i > 0);   // the embeddings are frozen: block 0's input needs no gradient
            BlockWithDropout(i, x).backward([grad]);
            if (i > 0) grad = x.grad!.MoveToOuterDisposeScope();
        }
        return value;
    }

    static JsonArray Pairs(IEnumerable<(int Step, double Value)> xs) =>
        new(xs.Select(x => (JsonNode)new JsonArray(x.Step, x.Value)).ToArray());

    /// <summary>Refuses a training file that is the evaluation text: the same file, a file with the same bytes, or a WikiText-2 test split.</summary>
    public static void RefuseEvaluationText(IEnumerable<string> dataFiles, string evalDataset)
    {
        string? evalHash = File.Exists(evalDataset) ? ContentHash.OfFile(evalDataset) : null;
        foreach (var f in dataFiles)
        {
            if (Path.GetFileName(f) == "wiki.test.raw")
                throw new PrunerZeroException($"--data {f}: refusing to train on the WikiText-2 test split: it is the evaluation text");
            if (evalHash != null && File.Exists(f) && (PathSafety.SameFile(f, evalDataset) || ContentHash.OfFile(f) == evalHash))
                throw new PrunerZeroException($"--data {f} is the evaluation text {evalDataset} (the same bytes); training on it would make its perplexity meaningless");
        }
    }

    static void SaveCheckpoint(LoraAdapters lora, AdamW optimizer, string modelDir, string dir, int step, JsonObject recipe,
        List<(int Step, double Loss)> losses, List<(int Step, double Perplexity)> evals, double trainSeconds)
    {
        string name = $"step-{step:000000}";
        string stepDir = Path.Combine(dir, name);
        if (Directory.Exists(stepDir)) Directory.Delete(stepDir, recursive: true);   // a half-written one from a killed run
        lora.Save(stepDir, modelDir);
        optimizer.Save(Path.Combine(stepDir, "optimizer.safetensors"));
        // state.json last, renamed into place: it names a step folder only once that folder is complete.
        File.WriteAllText(Path.Combine(dir, "state.json.tmp"), new JsonObject
        {
            ["step"] = step, ["dir"] = name, ["recipe"] = recipe.DeepClone(), ["train_seconds"] = trainSeconds,
            ["losses"] = Pairs(losses), ["evals"] = Pairs(evals),
        }.ToJsonString());
        File.Move(Path.Combine(dir, "state.json.tmp"), Path.Combine(dir, "state.json"), overwrite: true);
        foreach (var old in Directory.EnumerateDirectories(dir, "step-*"))
            if (Path.GetFileName(old) != name) Directory.Delete(old, recursive: true);
    }

    /// <summary>Sample i of the run is block Block(i): epoch i / n in the order of a permutation drawn from (seed, epoch).</summary>
    sealed class EpochOrder(int blocks, int seed)
    {
        readonly Dictionary<long, int[]> _perms = new();

        public int Block(long sample)
        {
            long epoch = sample / blocks;
            if (!_perms.TryGetValue(epoch, out var perm))
            {
                perm = Enumerable.Range(0, blocks).ToArray();
                new Random(StableSeed.ForRandom(seed, epoch)).Shuffle(perm);
                _perms[epoch] = perm;
            }
            return perm[sample % blocks];
        }
    }
}
