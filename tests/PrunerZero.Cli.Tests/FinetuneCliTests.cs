using System.Text.Json;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Tests;
using static TorchSharp.torch;

namespace PrunerZero.Cli.Tests;

/// <summary>`finetune` end to end: the PEFT adapter it writes is what `eval --adapter` applies, `--merge masked` keeps every zero, refusals.</summary>
public class FinetuneCliTests : TorchGuarded
{
    static string[] Finetune((string Model, string Wiki, string Calib, string Cache) s, string model, string outDir) =>
        ["finetune", "--model", model, "--out", outDir, "--data", s.Calib, "--dataset", s.Wiki, "--seqlen", "16", "--batch", "2",
         "--steps", "3", "--lr", "0.01", "--targets", "q,k,v,o,gate,up,down", "--merge", "masked"];

    static double Perplexity(params string[] args)
    {
        var (exit, stdout, err) = CliRunner.Run(args);
        Assert.True(exit == 0, err);
        return JsonDocument.Parse(stdout).RootElement.GetProperty("perplexity").GetDouble();
    }

    [Fact]
    public void EvalWithTheAdapterEqualsEvalOfTheMergedCheckpoint()
    {
        var s = PipelineTests.Setup();
        string outDir = Path.Combine(TestCheckpoints.TempDir("ft-cli"), "adapter");
        var (exit, _, err) = CliRunner.Run(Finetune(s, s.Model, outDir));
        Assert.True(exit == 0, err);
        Assert.True(File.Exists(Path.Combine(outDir, "adapter_config.json")) && File.Exists(Path.Combine(outDir, "adapter_model.safetensors")));
        string[] eval = ["eval", "--dataset", s.Wiki, "--seqlen", "32", "--json"];
        double dense = Perplexity([.. eval, "--model", s.Model]);
        double adapted = Perplexity([.. eval, "--model", s.Model, "--adapter", outDir]);
        // The dense test model has no zeros, so the masked merge is the plain merge W + s·B·A: the same function.
        double merged = Perplexity([.. eval, "--model", Path.Combine(outDir, "merged")]);
        Assert.True(Math.Abs(adapted - dense) > 1e-3, $"the adapter changed nothing: {adapted} vs {dense}");
        Assert.True(Math.Abs(adapted - merged) / merged < 1e-5, $"eval --adapter {adapted} vs the merged checkpoint {merged}");

        // The same --out again is refused (the adapter would be overwritten); the evaluation text as training data too.
        var (x2, _, e2) = CliRunner.Run(Finetune(s, s.Model, outDir));
        Assert.Equal(1, x2);
        Assert.Contains("already holds", e2);
        var (x3, _, e3) = CliRunner.Run([.. Finetune(s, s.Model, outDir + "-2").Select(a => a == s.Calib ? s.Wiki : a)]);
        Assert.Equal(1, x3);
        Assert.Contains("evaluation", e3);
        var (x4, _, e4) = CliRunner.Run([.. Finetune(s, s.Model, outDir + "-3").SkipLast(2), "--merge", "full"]);
        Assert.Equal(1, x4);
        Assert.Contains("--merge 'full'", e4);
    }

    /// <summary>
    /// On a sparse base the update trains masked by W ≠ 0, so the trained forward (the evaluation finetune makes at its
    /// last step) and the merged-masked checkpoint are one function; eval --adapter on the pruned base is PEFT's
    /// (unmasked) forward, another one.
    /// </summary>
    [Fact]
    public void MergeMaskedKeepsEveryZeroOfAPrunedModel()
    {
        var s = PipelineTests.Setup();
        string root = TestCheckpoints.TempDir("ft-pruned");
        string pruned = Path.Combine(root, "pruned");
        var (x1, _, e1) = CliRunner.Run(["prune", .. PipelineTests.PruneCommon(s), "--metric", "wanda", "--out", pruned]);
        Assert.True(x1 == 0, e1);
        string outDir = Path.Combine(root, "adapter");
        var (x2, _, e2) = CliRunner.Run([.. Finetune(s, pruned, outDir), "--eval-every", "3"]);
        Assert.True(x2 == 0, e2);
        Assert.Contains("update mask: the base is sparse, so 14 of 14 target linears", e2);
        Assert.Contains("merge masked: layer 1 mlp.down_proj    sparsity 50.0000% -> 50.0000%", e2);
        var before = Checkpoint.Entries(pruned).ToDictionary(e => e.Entry.Name);
        int compared = 0;
        foreach (var (e, start) in Checkpoint.Entries(Path.Combine(outDir, "merged")))
        {
            if (!e.Name.Contains("_proj")) continue;
            using var scope = NewDisposeScope();
            var a = TestCheckpoints.Floats(SafeTensors.Read(before[e.Name].Entry, before[e.Name].DataStart));
            var b = TestCheckpoints.Floats(SafeTensors.Read(e, start));
            Assert.Equal(a.Select(v => v == 0), b.Select(v => v == 0));
            Assert.True(a.Count(v => v == 0) * 2 >= a.Length, $"{e.Name} is not pruned");
            Assert.False(a.SequenceEqual(b), $"{e.Name}: the merge changed nothing");
            compared++;
        }
        Assert.Equal(14, compared);

        var evals = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "finetune.json"))).RootElement.GetProperty("perplexity");
        double before0 = evals[0][1].GetDouble(), trained = evals[evals.GetArrayLength() - 1][1].GetDouble();
        Assert.Equal(3, evals[evals.GetArrayLength() - 1][0].GetInt32());
        string[] eval = ["eval", "--dataset", s.Wiki, "--json"];
        double merged = Perplexity([.. eval, "--model", Path.Combine(outDir, "merged")]);
        double adapted = Perplexity([.. eval, "--model", pruned, "--adapter", outDir]);
        Assert.True(Math.Abs(trained - before0) > 1e-3, $"training changed nothing: {trained} vs {before0}");
        Assert.True(Math.Abs(merged - trained) / trained < 1e-5, $"the merged-masked checkpoint {merged} vs the trained forward {trained}");
        // --adapter is PEFT's forward (B·A dense, the pruned positions get weights): not the masked model that was trained.
        Assert.True(Math.Abs(adapted - trained) / trained > 1e-6, $"eval --adapter {adapted} applied the training mask ({trained}); it must be PEFT's forward");
    }
}
