// A worker screens against the bar the search sends and hands back a cut as the search's process would make it:
// the bar reaches the fitness, and every field of the result survives the trip (JobState.Done / Result).
using PrunerZero.Cluster;
using PrunerZero.Kernels;
using PrunerZero.Search;

namespace PrunerZero.Workflows.Tests;

public class WorkerJobTests : TorchGuarded
{
    /// <summary>Cuts every screen with a finite bar after 3 of 16 windows; records the bars it was given.</summary>
    sealed class BarFitness : IFitness
    {
        public readonly List<double> Bars = [];
        public string Protocol => "bar";
        public int MaxParallelism => 1;
        public FitnessResult Screen(Expr m, CancellationToken ct) => Screen(m, double.PositiveInfinity, ct);
        public FitnessResult Screen(Expr m, double bar, CancellationToken ct)
        {
            lock (Bars) Bars.Add(bar);
            return bar < double.PositiveInfinity
                ? FitnessResult.Stopped(new ScreenCut(CutKind.Bound, bar * 1.5, bar, 3, 16), 0.25, 3 * 256)
                : new FitnessResult(true, 42.5, null, 0.5) { Tokens = 16 * 256 };
        }
        public FitnessResult Full(Expr m, CancellationToken ct) => new(true, 41.25, null, 2) { Tokens = 4096 };
    }

    static JobState Finish(WorkerService w, Guid id)
    {
        for (int i = 0; i < 500; i++)
        {
            var s = w.Poll(id);
            if (s.Status is JobStatus.Done or JobStatus.Failed) return s;
            Thread.Sleep(10);
        }
        throw new TimeoutException("the job did not finish");
    }

    [Fact]
    public async Task A_cut_screen_travels_from_the_worker_with_its_bound_windows_and_tokens()
    {
        var fitness = new BarFitness();
        var worker = new WorkerService("w", "p", "cpu", TextWriter.Null);
        using var stop = new CancellationTokenSource();
        var serve = Task.Run(() => worker.Serve(fitness, stop.Token));
        Guid a = Guid.NewGuid(), b = Guid.NewGuid(), c = Guid.NewGuid();
        worker.Start(a, "mul(W, G)", full: false, bar: 180.5);
        worker.Start(b, "mul(W, G)", full: false, bar: double.PositiveInfinity);
        worker.Start(c, "mul(W, G)", full: true, bar: double.PositiveInfinity);
        var cut = Finish(worker, a).Result();
        var whole = Finish(worker, b).Result();
        var full = Finish(worker, c).Result();
        stop.Cancel();
        await serve;

        Assert.Equal([180.5, double.PositiveInfinity], fitness.Bars);
        Assert.Equal(new ScreenCut(CutKind.Bound, 180.5 * 1.5, 180.5, 3, 16), cut.Cut);
        Assert.True(cut.Valid && double.IsNaN(cut.Perplexity));
        Assert.Equal(3 * 256, cut.Tokens);
        Assert.Equal(double.PositiveInfinity, cut.Key);
        Assert.Null(whole.Cut);
        Assert.Equal((42.5, 16L * 256), (whole.Perplexity, whole.Tokens));
        Assert.Equal((41.25, 4096L), (full.Perplexity, full.Tokens));
        Assert.Contains("cluster_wire=2", ProtocolId.Of("model_sha256=ab"));
        Assert.Contains("cluster_wire: (none) here vs 2 on the worker", ProtocolId.Differences("model_sha256=ab", ProtocolId.Of("model_sha256=ab"))[0]);
    }
}
