using static TorchSharp.torch;
using PrunerZero.Runtime.ZeroShot;

namespace PrunerZero.Runtime.Tests;

/// <summary>
/// Zero-shot scoring on hand-built items. An all-zero model gives uniform logits, so every token costs exactly
/// ln V nats and each option's log-likelihood is −(its continuation tokens)·ln V; the byte-level test tokenizer
/// makes token counts easy to read (one token per byte, no merges but "th").
/// </summary>
public sealed class ZeroShotTests : TorchGuarded
{
    static readonly double LnV = Math.Log(300);   // TestCheckpoints.Config vocab

    /// <summary>Naive reference: one window alone through the full <see cref="LlamaModel.Forward"/> (B = 1, all logits).</summary>
    static double LogLikelihoodNaive(LlamaModel model, int[] window, int contLen)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        int len = window.Length - 1;
        var ids = tensor(window[..len].Select(x => (long)x).ToArray(), [1, len]).to(model.Embed.device);
        var logp = model.Forward(ids)[0].to(ScalarType.Float32).log_softmax(-1).to(ScalarType.Float64).cpu();   // (T, V)
        double sum = 0;
        for (int j = len - contLen; j < len; j++) sum += logp[j, window[j + 1]].item<double>();
        return sum;
    }

    static (LlamaModel Model, TextTokenizer Tok) Load(float scale, int seed = 3)
    {
        var cfg = TestCheckpoints.Config();
        string dir = TestCheckpoints.Write(cfg, seed: seed, scale: scale);
        var config = LlamaConfig.FromJson(cfg);
        return (Checkpoint.Load(dir), TextTokenizer.Load(dir, config));
    }

    static ZeroShotTask Task(string name, bool accNorm, params ZeroShotItem[] items) =>
        new() { Name = name, Label = name, ReportsAccNorm = accNorm, Source = "test", Items = items };

    static ZeroShotItem Item(string context, int gold, params string[] choices) =>
        new("t", choices.Select(c => new ZeroShotChoice(context, " " + c, c)).ToList(), gold);

    [Fact]
    public void UniformModelGivesMinusTokensTimesLnV()
    {
        var (model, tok) = Load(scale: 0f);
        using var _ = model;
        // "Q: a" → Q, :, Ġ, a; the continuation " a" is two byte tokens, " bcdefgh" eight.
        var windows = new List<int[]>();
        var conts = new List<int>();
        foreach (var cont in new[] { " a", " bcdefgh", " th" })
        {
            var (c, k) = ZeroShotEncoding.EncodePair(tok, "Q:", cont);
            windows.Add(ZeroShotEncoding.Window(c, k, 64).Window);
            conts.Add(k.Length);
        }
        Assert.Equal([2, 8, 2], conts);   // " th" is Ġ + the merged "th"
        var lls = ZeroShotEvaluator.LogLikelihoods(model, windows, conts);
        for (int i = 0; i < lls.Length; i++) Assert.Equal(-conts[i] * LnV, lls[i], 4);
    }

    [Fact]
    public void AccAndAccNormDifferWhereLengthsDiffer()
    {
        var (model, tok) = Load(scale: 0f);
        using var _ = model;
        // Uniform model: acc prefers the fewest tokens; acc_norm divides by the choice's length in characters.
        //  A: " a" (2 tokens, len 1) vs " bcdefgh" (8 tokens, len 7): acc → 0, acc_norm → 1 (−2 lnV vs −1.14 lnV)
        //  B: same options, gold 0: acc right, acc_norm wrong
        //  C: " xy" (3 tokens, len 2) vs " abcdefghij" (11, len 10): acc → 0, acc_norm → 1
        var task = Task("toy", true,
            Item("Q:", 1, "a", "bcdefgh"),
            Item("Q:", 0, "a", "bcdefgh"),
            Item("Q:", 1, "xy", "abcdefghij"));
        var r = ZeroShotEvaluator.Evaluate(model, tok, task);
        Assert.Equal(3, r.Items);
        Assert.Equal(1.0 / 3, r.Acc, 12);
        Assert.Equal(2.0 / 3, r.AccNorm!.Value, 12);
        Assert.Equal(Math.Sqrt(1.0 / 3 * 2.0 / 3 / 2), r.AccStderr, 12);
        Assert.Equal(0, r.Truncated);

        // A task the harness reports acc only for has no acc_norm, and the report's means say which is which.
        var accOnly = ZeroShotEvaluator.Evaluate(model, tok, Task("toy2", false, Item("Q:", 0, "a", "bcdefgh")));
        Assert.Null(accOnly.AccNorm);
        var report = new ZeroShotReport { Tasks = [r, accOnly], Bos = false, MaxLength = 64 };
        Assert.Equal((1.0 / 3 + 1) / 2, report.MeanAcc, 12);
        Assert.Equal((2.0 / 3 + 1) / 2, report.MeanAccNorm, 12);
        // The headline Mean is the mean of acc (the paper tables), computed here by hand, and not the acc_norm mean.
        Assert.Equal((1.0 / 3 + 1) / 2, report.Mean, 12);
        Assert.NotEqual(report.MeanAccNorm, report.Mean, 6);
        Assert.Contains("mean of acc", report.Describe());
    }

    [Fact]
    public void TrailingWhitespaceOfTheContextMovesToTheContinuation()
    {
        var (model, tok) = Load(scale: 0f);
        using var _ = model;
        Assert.Equal(256, tok.Encode("Answer:")[0]);                       // Encode puts BOS first...
        Assert.Equal(tok.Encode("Answer:")[1..], tok.EncodeNoSpecial("Answer:"));  // ...EncodeNoSpecial does not

        var (ctx, cont) = ZeroShotEncoding.EncodePair(tok, "Answer: ", "yes");
        Assert.Equal(tok.EncodeNoSpecial("Answer:"), ctx);
        Assert.Equal(tok.EncodeNoSpecial(" yes"), cont);                      // Ġ y e s, not "Answer: " + "yes"

        (ctx, cont) = ZeroShotEncoding.EncodePair(tok, "Q\n \n", "x");
        Assert.Equal(tok.EncodeNoSpecial("Q"), ctx);
        Assert.Equal(tok.EncodeNoSpecial("Q\n \nx")[ctx.Length..], cont);

        // continuation_enc = tok(whole)[len(context_enc):]: "t" + "h" merge across the boundary.
        (ctx, cont) = ZeroShotEncoding.EncodePair(tok, "at", "h");
        Assert.Equal([(int)'a', (int)'t'], ctx);
        Assert.Equal(tok.EncodeNoSpecial("ath")[2..], cont);
        Assert.Empty(cont);   // "ath" is a, th: the harness would refuse this request too
        Assert.Throws<PrunerZeroException>(() => ZeroShotEncoding.Window(ctx, cont, 64));

        // BOS on request (add_bos_token=True): in front of both encodings.
        (ctx, cont) = ZeroShotEncoding.EncodePair(tok, "Answer:", " yes", bos: true);
        Assert.Equal(256, ctx[0]);
        Assert.Equal(tok.EncodeNoSpecial(" yes"), cont);
    }

    [Fact]
    public void BatchedLogLikelihoodsMatchTheNaiveForwardIncludingLeftTruncation()
    {
        var (model, tok) = Load(scale: 0.2f, seed: 7);
        using var _ = model;
        string longContext = string.Concat(Enumerable.Repeat("the quick brown fox jumps over a lazy dog. ", 6));   // > 64 tokens
        var requests = new[] { ("Q:", " a"), ("Question: why?\nAnswer:", " because it is"), (longContext, " and then"), ("x", " y") };
        var windows = new List<int[]>();
        var conts = new List<int>();
        foreach (var (c, k) in requests)
        {
            var (ce, ke) = ZeroShotEncoding.EncodePair(tok, c, k);
            var (w, cut) = ZeroShotEncoding.Window(ce, ke, 64);
            Assert.Equal(c == longContext, cut);
            if (cut)
            {
                Assert.Equal(65, w.Length);                                     // max_length + 1
                Assert.Equal(ce.Concat(ke).TakeLast(65), w);                     // cut from the left
            }
            windows.Add(w);
            conts.Add(ke.Length);
        }
        var batched = ZeroShotEvaluator.LogLikelihoods(model, windows, conts);
        for (int i = 0; i < windows.Count; i++)
        {
            double naive = LogLikelihoodNaive(model, windows[i], conts[i]);
            Assert.True(Math.Abs(batched[i] - naive) < 1e-3, $"request {i}: batched {batched[i]} vs naive {naive}");
            Assert.True(batched[i] < 0);
        }

        // A whole evaluation with a too-long item: truncated, counted, and batch budgets do not change the result.
        var task = Task("long", true, Item(longContext, 0, "and then", "but"), Item("Q:", 1, "a", "bcd"), Item("Hello", 0, "world", "there"));
        var r1 = ZeroShotEvaluator.Evaluate(model, tok, task, batchTokens: 1);
        var r2 = ZeroShotEvaluator.Evaluate(model, tok, task, batchTokens: 100_000);
        Assert.Equal(1, r1.Truncated);
        Assert.Equal(r1.Acc, r2.Acc);
        Assert.Equal(r1.AccNorm, r2.AccNorm);
        var limited = ZeroShotEvaluator.Evaluate(model, tok, task, limit: 2);
        Assert.Equal(2, limited.Items);
    }

    [Fact]
    public void WinoGrandeStyleItemsScoreTheSameContinuationUnderEachContext()
    {
        var (model, tok) = Load(scale: 0f);
        using var _ = model;
        // Uniform model: the shared continuation costs the same under both contexts, so the first option wins the tie.
        var item = new ZeroShotItem("w", [new("Sarah beat Maria so Sarah", " won.", "Sarah beat Maria so Sarah"),
                                          new("Sarah beat Maria so Maria", " won.", "Sarah beat Maria so Maria")], 1);
        var r = ZeroShotEvaluator.Evaluate(model, tok, Task("winogrande", false, item));
        Assert.Equal(0.0, r.Acc);
    }

    [Fact]
    public void PredictTakesTheFirstOfEqualMaximaAndStderrIsTheSampleStderr()
    {
        var choices = new[] { new ZeroShotChoice("c", " ab", "ab"), new ZeroShotChoice("c", " cd", "cd"), new ZeroShotChoice("c", " é", "é") };
        Assert.Equal((0, 0), ZeroShotEvaluator.Predict([-2.0, -2.0, -5.0], choices));
        // acc_norm: −2, −1.5, −2.5 with "é" of length 1 (Python's len: code points); by UTF-8 bytes it would be −1.25 and win.
        Assert.Equal((2, 1), ZeroShotEvaluator.Predict([-4.0, -3.0, -2.5], choices));
        Assert.Equal(1, ZeroShotTasks.PyLen("é"));
        Assert.Equal(2, ZeroShotTasks.PyLen("😀a"));
        Assert.Equal(Math.Sqrt(0.25 / 4), ZeroShotEvaluator.Stderr(0.5, 5), 15);
        Assert.True(double.IsNaN(ZeroShotEvaluator.Stderr(1, 1)));
    }

    [Fact]
    public void HellaSwagOfficialFormatIsPreprocessedAsTheHarnessDoes()
    {
        Assert.Equal("A man. is here now", ZeroShotTasks.HellaSwagPreprocess("  A man [title] is here [step] now  "));
        Assert.Equal("a  b", ZeroShotTasks.HellaSwagPreprocess("a    b"));      // one pass of "  " → " ", as Python's replace
        Assert.Equal("He is", ZeroShotTasks.PyCapitalize("hE IS"));

        string dir = TestCheckpoints.TempDir("hellaswag");
        string path = Path.Combine(dir, "hellaswag_val.jsonl");
        File.WriteAllText(path,
            """{"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."], "label": 3, "split": "val"}""" + "\n" +
            """{"ind": 25, "activity_label": "Making a cake", "ctx_a": "[header] How to bake a cake [title] Preheat the oven.", "ctx_b": "then YOU", "endings": ["mix [step] the flour.", "b", "c", "d"], "label": "0"}""" + "\n");
        var task = ZeroShotTasks.Load("unused", [$"hellaswag={path}"]).Single();
        Assert.False(task.Derived);
        Assert.True(task.ReportsAccNorm);
        Assert.Equal("hellaswag", task.Label);
        var first = task.Items[0];
        Assert.Equal(3, first.Gold);
        Assert.Equal("Roof shingle removal: A man is sitting on a roof. He", first.Choices[0].Context);
        Assert.Equal(" is using wrap to wrap a pair of skis.", first.Choices[0].Continuation);
        Assert.Equal("is using wrap to wrap a pair of skis.", first.Choices[0].Text);
        var second = task.Items[1];
        Assert.Equal(0, second.Gold);
        Assert.Equal("Making a cake: How to bake a cake. Preheat the oven. Then you", second.Choices[0].Context);
        Assert.Equal(" mix the flour.", second.Choices[0].Continuation);
    }

    [Fact]
    public void UnknownTasksAndMissingFilesAreUserErrors()
    {
        Assert.Throws<PrunerZeroException>(() => ZeroShotTasks.Load("nowhere", ["piqa"]));
        Assert.Throws<PrunerZeroException>(() => ZeroShotTasks.Load("nowhere", ["boolq"]));
        Assert.Throws<PrunerZeroException>(() => ZeroShotTasks.Load("nowhere", Array.Empty<string>()));
        string dir = TestCheckpoints.TempDir("zs-bad");
        string bad = Path.Combine(dir, "rte.jsonl");
        File.WriteAllText(bad, """{"premise": "p", "hypothesis": "h", "label": "maybe", "idx": 0}""");
        var e = Assert.Throws<PrunerZeroException>(() => ZeroShotTasks.Load("", [$"rte={bad}"]));
        Assert.Contains("rte.jsonl:1", e.Message);
    }
}
