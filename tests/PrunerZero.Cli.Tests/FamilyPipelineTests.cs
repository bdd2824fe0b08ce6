using System.Text.Json;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Tests;

namespace PrunerZero.Cli.Tests;

/// <summary>
/// The verbs end to end on tiny checkpoints of each family (Llama-3 RoPE scaling, Mistral with a window shorter than
/// --seqlen, Qwen2 biases, Qwen3 q/k norms): prune with G and with the OBS update, save, reload with the same
/// perplexity and the family's config and extra tensors, score, stats.
/// </summary>
public class FamilyPipelineTests : TorchGuarded
{
    [Theory]
    [InlineData("llama3")]
    [InlineData("mistral-window")]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    public void EveryVerbRunsOnTheFamily(string family)
    {
        var s = PipelineTests.Setup();
        string model = TestCheckpoints.Write(TestCheckpoints.FamilyConfig(family, tied: family == "qwen2"), seed: 17);
        s = (model, s.Wiki, s.Calib, s.Cache);

        foreach (var extra in new[] { new[] { "--metric", "pruner-zero", "--nm", "2:4" }, ["--metric", "wanda", "--sparsity", "0.5", "--update", "obs"] })
        {
            string outDir = Path.Combine(TestCheckpoints.TempDir("family-out"), "pruned");
            var (exit, stdout, err) = CliRunner.Run(["prune", .. PipelineTests.Common(s), .. extra, "--out", outDir, "--eval", "--json"]);
            Assert.True(exit == 0, err);
            double ppl;
            using (var doc = JsonDocument.Parse(stdout)) ppl = doc.RootElement.GetProperty("perplexity").GetDouble();
            Assert.True(double.IsFinite(ppl) && ppl > 1, $"perplexity {ppl}");

            var (exit2, stdout2, err2) = CliRunner.Run("eval", "--model", outDir, "--dataset", s.Wiki, "--seqlen", "32", "--json");
            Assert.True(exit2 == 0, err2);
            using (var doc2 = JsonDocument.Parse(stdout2)) Assert.Equal(ppl, doc2.RootElement.GetProperty("perplexity").GetDouble(), 1e-6 * ppl);
            var source = LlamaConfig.Load(Path.Combine(model, "config.json"));
            var saved = LlamaConfig.Load(Path.Combine(outDir, "config.json"));
            Assert.Equal(source.ToJson().ToJsonString(), saved.ToJson().ToJsonString());
            var names = SafeTensors.ReadHeader(Path.Combine(outDir, "model.safetensors")).Entries.Select(e => e.Name).Order();
            Assert.Equal(SafeTensors.ReadHeader(Path.Combine(model, "model.safetensors")).Entries.Select(e => e.Name).Order(), names);
        }

        string metrics = Path.Combine(TestCheckpoints.TempDir("family-metrics"), "lib.txt");
        File.WriteAllLines(metrics, ["magnitude", "wanda"]);
        var (e3, out3, err3) = CliRunner.Run(["score", .. PipelineTests.Common(s), "--metrics", metrics, "--json"]);
        Assert.True(e3 == 0, err3);
        using (var doc3 = JsonDocument.Parse(out3))
            Assert.All(doc3.RootElement.GetProperty("rows").EnumerateArray(), r => Assert.True(r.GetProperty("valid").GetBoolean()));
        var (e4, out4, err4) = CliRunner.Run("stats", "--model", s.Model, "--calib", s.Calib, "--nsamples", "4", "--seqlen", "32", "--calib-sampling", "stride", "--json");
        Assert.True(e4 == 0, err4);
        using (var doc4 = JsonDocument.Parse(out4)) Assert.Equal(s.Model, doc4.RootElement.GetProperty("model").GetString());
    }
}
