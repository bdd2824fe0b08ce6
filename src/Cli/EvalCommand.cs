using System.Text;
using System.Text.Json;
using CommandLine;
using PrunerZero.Runtime;
using PrunerZero.Workflows;
using PrunerZero.Runtime.Training;

namespace PrunerZero.Cli;

[Verb("eval", HelpText = "WikiText-2 perplexity and bits per byte of a checkpoint (Wanda / SparseGPT / Pruner-Zero protocol).")]
public sealed class EvalOptions
{
    [Option("model", HelpText = "Checkpoint folder in Hugging Face layout (default: the embedded model).")]
    public string? Model { get; set; }

    [Option("dataset", HelpText = "wikitext2 (the shipped test split), a wiki.*.raw file, or a wikitext parquet file.")]
    public string? Dataset { get; set; }

    [Option("seqlen", HelpText = "Window length (default: max_position_embeddings, capped at 4096).")]
    public int? Seqlen { get; set; }

    [Option("windows", HelpText = "Evaluate only the first K windows.")]
    public int? Windows { get; set; }

    [Option("adapter", HelpText = "A LoRA adapter folder in PEFT's layout (adapter_config.json, adapter_model.safetensors) applied as PEFT applies it (W·x + alpha/r·B·A·x); for the sparse model an adapter was trained as on a pruned base, evaluate finetune's --merge masked output instead.")]
    public string? Adapter { get; set; }

    [Option("json", HelpText = "Print one JSON object on stdout.")]
    public bool Json { get; set; }
}

public static class EvalCommand
{
    public static int Run(EvalOptions o)
    {
        if (o.Seqlen is < 2) throw new PrunerZeroException($"--seqlen must be at least 2, got {o.Seqlen}");
        if (o.Windows is <= 0) throw new PrunerZeroException($"--windows must be positive, got {o.Windows}");
        string modelDir = Defaults.Model(o.Model);
        string dataPath = Defaults.Dataset(o.Dataset);
        new VerbPaths().InputFolder("--model", modelDir).InputFolder("--adapter", o.Adapter).InputFile("--dataset", dataPath);   // no output; devices and FIFOs refused
        var progress = new ProgressLine();

        var config = LlamaConfig.Load(Path.Combine(Checkpoint.RequireDirectoryAnd(modelDir), "config.json"));
        var tokenizer = TextTokenizer.Load(modelDir, config);
        var (tokens, bytes) = Corpus.Tokenize(dataPath, tokenizer, progress);
        Corpus.CheckTokenIds(tokens, config.VocabSize, dataPath);
        int seqlen = o.Seqlen ?? Perplexity.DefaultSeqlen(config);
        Perplexity.WindowCount(tokens.Length, seqlen, dataPath);   // refuse before loading weights
        long weightBytes = Checkpoint.Entries(modelDir).Sum(e => e.Entry.End - e.Entry.Begin);
        Console.Error.WriteLine($"memory: {LlamaModel.Gib(weightBytes)} of weights (held as stored, {config.TorchDtype}) + about {LlamaModel.Gib(LlamaModel.ActivationBytes(config, seqlen))} for one window's activations and one block in float32");

        using var model = Checkpoint.Load(modelDir, progress, keepDtype: true);
        using var adapter = o.Adapter is null ? null : LoraAdapters.Load(o.Adapter, model);
        adapter?.Attach(model);
        var r = Perplexity.Evaluate(model, o.Adapter is null ? modelDir : $"{modelDir} + adapter {o.Adapter}", tokens, bytes, Path.GetFileName(dataPath), seqlen, o.Windows, progress);
        progress.Done();
        if (o.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                model = r.Model, dataset = r.Dataset, seqlen = r.Seqlen, windows = r.Windows, tokens = r.Tokens,
                perplexity = JsonNumbers.Finite(r.Perplexity), bits_per_byte = JsonNumbers.Finite(r.BitsPerByte), mean_nll = JsonNumbers.Finite(r.MeanNll),
                perplexity_note = JsonNumbers.Note("perplexity", r.Perplexity),
                text_tokens = r.TextTokens, text_bytes = r.TextBytes, seconds = r.Seconds,
            }));
        }
        else Console.WriteLine(r.Describe());
        // The result is written either way (null with a note in JSON); a non-finite perplexity is still a failed evaluation.
        if (!double.IsFinite(r.Perplexity))
        {
            Console.Error.WriteLine($"error: {JsonNumbers.Note("perplexity", r.Perplexity)}");
            return 1;
        }
        return 0;
    }
}
