using System.Text;
using Parquet;
using Parquet.Schema;
using PrunerZero.Runtime;
using TorchSharp;

namespace PrunerZero.Runtime.Tests;

public class DataAndProtocolTests : TorchGuarded
{
    const string Raw = " \n = Title = \n \n Some text here . \n\n More @-@ text . \n";

    [Fact]
    public void WikiTextRowsAsHuggingFaceGivesThem()
    {
        string p = Path.Combine(TestCheckpoints.TempDir("wiki"), "wiki.test.raw");
        File.WriteAllText(p, Raw);
        var rows = TextData.WikiTextRows(p);
        // Each non-blank line with its newline; a blank (or whitespace-only) line as an empty row.
        Assert.Equal(["", " = Title = \n", "", " Some text here . \n", "", " More @-@ text . \n"], rows);
        Assert.Equal("\n\n = Title = \n\n\n\n\n Some text here . \n\n\n\n\n More @-@ text . \n", TextData.JoinRows(rows));
    }

    [Fact]
    public async Task ParquetGivesTheSameRowsAsRaw()
    {
        string dir = TestCheckpoints.TempDir("parquet");
        string raw = Path.Combine(dir, "wiki.test.raw");
        File.WriteAllText(raw, Raw);
        string pq = Path.Combine(dir, "test-00000-of-00001.parquet");
        var field = new DataField<string>("text");
        var rows = TextData.WikiTextRows(raw);
        await using (var fs = File.Create(pq))
        await using (var writer = await ParquetWriter.CreateAsync(new ParquetSchema(field), fs))
        {
            using var rg = writer.CreateRowGroup();
            await rg.WriteAsync(field, rows, null);
        }
        Assert.Equal(rows, TextData.WikiTextRows(pq));
    }

    [Fact]
    public void CalibrationJsonlAndPlainText()
    {
        string dir = TestCheckpoints.TempDir("calib");
        string jl = Path.Combine(dir, "c4.jsonl");
        File.WriteAllText(jl, "{\"text\": \"first doc\", \"url\": \"u\"}\n\n{\"text\": \"second\\ndoc\"}\n");
        Assert.Equal(["first doc", "second\ndoc"], TextData.CalibrationDocuments(jl));
        string gz = jl + ".gz";
        using (var o = File.Create(gz))
        using (var z = new System.IO.Compression.GZipStream(o, System.IO.Compression.CompressionLevel.Fastest))
            z.Write(File.ReadAllBytes(jl));
        Assert.Equal(["first doc", "second\ndoc"], TextData.CalibrationDocuments(gz));
        string txt = Path.Combine(dir, "plain.txt");
        File.WriteAllText(txt, "one plain\n\ndocument");
        Assert.Equal(["one plain\n\ndocument"], TextData.CalibrationDocuments(txt));
        File.WriteAllText(jl, "{\"body\": \"x\"}\n");
        Assert.Contains("no string 'text' field", Assert.Throws<PrunerZeroException>(() => TextData.CalibrationDocuments(jl)).Message);
    }

    /// <summary>A model with zero weights predicts uniformly: every NLL is ln V, so perplexity is exactly V.</summary>
    [Fact]
    public void PerplexityOfUniformModelIsVocabularySize()
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(vocab: 300), scale: 0f);
        using var model = Checkpoint.Load(dir);
        var tokens = Enumerable.Range(0, 101).Select(i => i % 250).ToArray();
        var r = Perplexity.Evaluate(model, "zero", tokens, textBytes: 202, "synthetic", seqlen: 25);
        Assert.Equal(4, r.Windows);                        // floor(101 / 25), tail dropped
        Assert.Equal(100, r.Tokens);
        Assert.Equal(300, r.Perplexity, 300 * 1e-5);   // float32 logits
        Assert.Equal(Math.Log(300) / Math.Log(2) * 101 / 202, r.BitsPerByte, 1e-6);
        var limited = Perplexity.Evaluate(model, "zero", tokens, 202, "synthetic", seqlen: 25, maxWindows: 2);
        Assert.Equal(2, limited.Windows);
    }

    /// <summary>Windows are non-overlapping, each evaluated on its own: the mean over windows of the per-window NLL sums.</summary>
    [Fact]
    public void PerplexityIsMeanOverIndependentWindows()
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 21);
        using var model = Checkpoint.Load(dir);
        var rng = new Random(3);
        var tokens = Enumerable.Range(0, 70).Select(_ => rng.Next(300)).ToArray();
        var r = Perplexity.Evaluate(model, "m", tokens, 140, "synthetic", seqlen: 16);
        var plain = new PlainLlama(model);
        double sum = 0;
        for (int w = 0; w < 4; w++) sum += plain.SumNll(tokens.Skip(w * 16).Take(16).ToArray());
        Assert.Equal(Math.Exp(sum / (4 * 15)), r.Perplexity, 1e-5 * r.Perplexity);
    }

    /// <summary>
    /// A window's NLL is its own cross-entropy sum whatever the windows beside it in a batch, in any evaluation order,
    /// bit for bit, and equal to the single-window forward (the screen's values do not depend on how windows are batched);
    /// a stop after the first forward leaves the rest unevaluated.
    /// </summary>
    [Fact]
    public void WindowNllIsTheSameInAnyBatchAndOrder()
    {
        string dir = Path.Combine(Golden.RepoRoot, "models", "pz-llama-tiny");
        using var model = Checkpoint.Load(dir);
        var tokens = TextTokenizer.Load(dir, model.Config).Encode(Golden.Corpus("wikitest")[..40000]);
        int seqlen = 256;
        var starts = Perplexity.WindowStarts(tokens.Length, seqlen, "wiki", 12, spread: true);
        Assert.True(Perplexity.WindowBatch(model.Config, seqlen) > 1);
        var single = starts.Select(s =>
        {
            using var scope = torch.NewDisposeScope();
            return model.NextTokenNll(torch.tensor(tokens.AsSpan((int)s, seqlen).ToArray().Select(t => (long)t).ToArray(), [1, seqlen])).SumNll;
        }).ToArray();
        int[] reversed = [.. Enumerable.Range(0, starts.Length).Reverse()];
        foreach (int batch in new[] { 1, 5, 8 })
        {
            Assert.Equal(single, Perplexity.WindowNll(model, tokens, seqlen, starts, null, batch: batch));
            Assert.Equal(single, Perplexity.WindowNll(model, tokens, seqlen, starts, reversed, batch: batch));
        }
        var stopped = Perplexity.WindowNll(model, tokens, seqlen, starts, reversed, (seen, sum) => false, batch: 5);
        Assert.Equal(5, stopped.Count(double.IsFinite));
        Assert.All(reversed.Take(5), w => Assert.Equal(single[w], stopped[w]));
    }

    [Fact]
    public void BosOnceAtTheStartForTokenizerJson()
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config());
        var tok = TextTokenizer.Load(dir, LlamaConfig.Load(Path.Combine(dir, "config.json")));
        var ids = tok.Encode("the thin\n\nthe");
        Assert.Equal(256, ids[0]);
        Assert.DoesNotContain(256, ids.Skip(1));
        Assert.Contains(258, ids);   // the "th" merge
        Assert.Equal("the thin\n\nthe", tok.Decode(ids.Skip(1)));
    }
}
