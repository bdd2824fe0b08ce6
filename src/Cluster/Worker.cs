// A worker: one Orleans silo per device. It loads its fitness (model, calibration, X and G) once, then
// evaluates the metrics the search sends, one at a time, on one thread (the device is used by one
// evaluation at a time; LibTorch already uses every core inside one).
using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans;
using Orleans.Hosting;
using PrunerZero.Kernels;
using PrunerZero.Search;

namespace PrunerZero.Cluster;

/// <summary>The silo-wide state behind the worker grain: the fitness, the job queue and the finished jobs.</summary>
public sealed class WorkerService(string name, string protocol, string device, TextWriter log)
{
    sealed class Job(Guid id, string metric, bool full, double bar)
    {
        public Guid Id { get; } = id;
        public string Metric { get; } = metric;
        public bool Full { get; } = full;
        public double Bar { get; } = bar;
        public volatile JobState State = new() { Status = JobStatus.Queued };
    }

    readonly ConcurrentDictionary<Guid, Job> _jobs = new();
    readonly BlockingCollection<Job> _queue = new();
    volatile IFitness? _fitness;
    volatile string? _error;
    string _fitnessProtocol = "";

    public string Name => name;

    public WorkerInfo Info => new()
    {
        Name = name, Protocol = protocol, Device = device, Ready = _fitness is not null, Error = _error,
        FitnessProtocol = _fitnessProtocol,
    };

    public void Start(Guid id, string metric, bool full, double bar)
    {
        var job = new Job(id, metric, full, bar);
        if (_jobs.TryAdd(id, job)) _queue.Add(job);
    }

    public JobState Poll(Guid id) => _jobs.TryGetValue(id, out var j) ? j.State : new JobState { Status = JobStatus.Unknown };

    public void Failed(string error) => _error = error;

    /// <summary>Evaluates queued jobs until <paramref name="ct"/> is cancelled. Runs on the calling thread.</summary>
    public void Serve(IFitness fitness, CancellationToken ct)
    {
        _fitnessProtocol = fitness.Protocol;
        _fitness = fitness;
        log.WriteLine($"worker {name}: ready");
        try
        {
            foreach (var job in _queue.GetConsumingEnumerable(ct))
            {
                job.State = new JobState { Status = JobStatus.Running };
                log.WriteLine($"worker {name}: {(job.Full ? "full" : "screen")} {job.Metric}");
                try
                {
                    var expr = MetricParser.Parse(job.Metric);
                    var sw = System.Diagnostics.Stopwatch.StartNew();
                    var r = job.Full ? fitness.Full(expr, ct) : fitness.Screen(expr, job.Bar, ct);
                    double seconds = r.Seconds > 0 ? r.Seconds : sw.Elapsed.TotalSeconds;
                    job.State = JobState.Done(r, seconds);
                }
                catch (OperationCanceledException) { throw; }
                catch (Exception e)
                {
                    log.WriteLine($"worker {name}: evaluation failed: {e.GetType().Name}: {e.Message}");
                    job.State = new JobState { Status = JobStatus.Failed, Failure = $"{e.GetType().Name}: {e.Message}" };
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
    }
}

[OnSiloPlacement]
public sealed class WorkerGrain(WorkerService service) : Grain, IWorkerGrain
{
    public Task<WorkerInfo> Hello() => Task.FromResult(service.Info);

    public Task Start(Guid job, string metric, bool full, double bar)
    {
        service.Start(job, metric, full, bar);
        return Task.CompletedTask;
    }

    public Task<JobState> Poll(Guid job) => Task.FromResult(service.Poll(job));
}

public static class WorkerHost
{
    /// <summary>
    /// Joins the cluster as a silo, then loads the fitness (the silo answers "not ready" meanwhile) and
    /// serves evaluations until <paramref name="ct"/> is cancelled.
    /// </summary>
    public static async Task RunAsync(ClusterSpec spec, string? name, string? advertise, string protocol, string device,
                                      Func<IFitness> load, TextWriter log, CancellationToken ct)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        ClientLogging(builder.Logging);
        string where = "";
        WorkerService? service = null;
        builder.UseOrleans(silo =>
        {
            where = spec.ConfigureSilo(silo, advertise);
            silo.Services.AddPlacementDirector<OnSiloPlacement, OnSiloPlacementDirector>();
            silo.Configure<Orleans.Configuration.ClusterMembershipOptions>(o =>
            {
                // Notice a killed worker in seconds rather than the default half minute.
                o.ProbeTimeout = TimeSpan.FromSeconds(2);
                o.NumMissedProbesLimit = 2;
            });
            silo.Services.AddSingleton(sp => service!);
        });
        using var host = builder.Build();
        var local = host.Services.GetRequiredService<Orleans.Runtime.ILocalSiloDetails>();
        service = new WorkerService(name ?? $"{Environment.MachineName}:{local.SiloAddress.Endpoint.Port}", protocol, device, log);
        log.WriteLine($"worker {service.Name}: joining {spec} ({where})");
        try { await host.StartAsync(ct); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new ClusterSpecException($"worker could not join {spec}: {e.GetType().Name}: {FirstLine(e.Message)}" +
                (spec.IsLocalhost ? " (with localhost clustering the first worker, slot 0, must be running)" : ""));
        }
        log.WriteLine($"worker {service.Name}: joined {spec}; loading the model");
        try
        {
            IFitness fitness;
            try { fitness = load(); }
            catch (Exception e) { service.Failed(FirstLine(e.Message)); throw; }
            await Task.Run(() => service.Serve(fitness, ct), CancellationToken.None);
        }
        finally
        {
            try { await host.StopAsync(TimeSpan.FromSeconds(5)); } catch (Exception) { /* leaving anyway */ }
        }
    }

    internal static string FirstLine(string s) => s.Split('\n', 2)[0].Trim();

    /// <summary>Orleans logs nothing by default (the search prints its own lines); PZ_ORLEANS_LOG=1 shows its log on stderr.</summary>
    internal static void ClientLogging(ILoggingBuilder logging)
    {
        logging.ClearProviders();
        if (Environment.GetEnvironmentVariable("PZ_ORLEANS_LOG") == "1")
            logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Information);
    }
}
