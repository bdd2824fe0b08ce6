using System.Text.Json.Nodes;
using PrunerZero.Runtime;

namespace PrunerZero.Cli;

/// <summary>The model card (README.md) of a trained model: command, data and licences, training figures, dense WikiText-2 test numbers.</summary>
public static class ModelCard
{
    public static void Write(string dir, string command, IReadOnlyList<string> data, ProgressLine progress)
    {
        var training = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "training.json")))!;
        var config = LlamaConfig.Load(Path.Combine(dir, "config.json"));
        var tokenizer = TextTokenizer.Load(dir, config);
        string wiki = Defaults.Find(Defaults.WikiTest);
        var (tokens, bytes) = Corpus.Tokenize(wiki, tokenizer, progress);
        using var model = Checkpoint.Load(dir);
        var r = Perplexity.Evaluate(model, dir, tokens, bytes, "wiki.test.raw", Perplexity.DefaultSeqlen(config), null, progress);
        progress.Done();
        Console.Error.WriteLine(r.Describe());
        // The card names the folder it lies in (the model's name), not the embedded default's.
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
        string card = $"""
# {name}

A small LLaMA-architecture model trained from scratch by this project, so that every verb has a real model
to run on a machine with no downloads. It is not a useful language model; it is a real one: RMSNorm,
rotate-half RoPE, grouped-query attention ({config.NumHeads} heads, {config.NumKvHeads} key/value heads), SwiGLU, tied head.

| | |
|---|---|
| parameters | {config.ParameterCount:N0} |
| layers / hidden / intermediate | {config.NumLayers} / {config.HiddenSize} / {config.IntermediateSize} |
| vocabulary | {config.VocabSize} (byte-level BPE trained by `prunerzero train`) |
| context (max_position_embeddings) | {config.MaxPositionEmbeddings} |
| training steps × batch × seqlen | {training["steps"]} × {training["batch"]} × {training["seqlen"]} |
| tokens seen | {training["tokens_seen"]!.GetValue<long>():N0} (training text: {training["train_tokens"]!.GetValue<long>():N0} tokens) |
| final training loss (mean of last 50 steps) | {training["final_loss_mean_last_50"]!.GetValue<double>():0.0000} |
| **WikiText-2 test perplexity** | **{r.Perplexity:0.00}** ({r.Windows} windows × {r.Seqlen} tokens, float32) |
| **WikiText-2 test bits per byte** | **{r.BitsPerByte:0.000}** |

Reproduce ({training["seconds"]!.GetValue<double>() / 60:0.0} minutes for the training run that made it, {training["tokens_seen"]!.GetValue<long>() / training["seconds"]!.GetValue<double>():N0} tokens/s):

```
{command}
```

Evaluate: `prunerzero eval --model {dir}` prints the perplexity above.

## Data and licences
Trained on {string.Join(" and ", data.Select(Path.GetFileName))}, never on wiki.test.raw:
- WikiText-2 raw (wikitext-2-raw-v1) validation split, Creative Commons Attribution-ShareAlike 3.0 (Wikipedia text).
- The first 1000 documents of C4 en train shard 00000, ODC-BY 1.0 (allenai/c4; Common Crawl terms of use).
See `data/*/PROVENANCE.txt` in the repository for sources and checksums. The weights are released under the
same terms as the text they were trained on (CC BY-SA 3.0 for the Wikipedia-derived part).
""";
        File.WriteAllText(Path.Combine(dir, "README.md"), card);
    }
}
