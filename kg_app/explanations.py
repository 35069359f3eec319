"""What each concept of the ontology means for someone training a model here, in four short parts.

Written for an analyst who is not a machine-learning expert: ``what`` it is, ``when`` to use it,
``typical`` values, common ``pitfalls``. Forms show ``what`` and ``when`` on hover; the concept page
shows all four. Admins may override any part (``kg_app.models.ConceptExplanation``); these texts are the
built-in ones, and a test checks every built-in concept has all four parts.
"""
from __future__ import annotations

PARTS = ("what", "when", "typical", "pitfalls")
PART_TITLES = {"what": "What it is", "when": "When to use it", "typical": "Typical values",
               "pitfalls": "Common pitfalls"}


def _e(what: str, when: str, typical: str, pitfalls: str) -> dict[str, str]:
    return {"what": what, "when": when, "typical": typical, "pitfalls": pitfalls}


EXPLANATIONS: dict[str, dict[str, str]] = {
    # --- the field as a whole ------------------------------------------------------------------------------
    "large-scale-training": _e(
        "Training a model whose data, parameters or search outgrow one quick experiment on one machine: it takes "
        "distribution over processes and GPUs, systematic tuning and careful data handling.",
        "As soon as one run takes longer than you want to wait, or you need many runs to find good settings.",
        "Runs of minutes to days; from one CPU process up to several GPU nodes; sweeps of tens to hundreds of "
        "trials.",
        "Scaling up before a small version works: get a small run right first, then add data, model size and "
        "processes one at a time."),

    # --- hyperparameter tuning -----------------------------------------------------------------------------
    "hyperparameter-tuning": _e(
        "Searching for the settings the model does not learn by itself (learning rate, batch size, depth…) by "
        "training several versions and keeping the one with the best validation score. Here a sweep does it.",
        "When a first run works but you suspect better settings exist, or before comparing two model families "
        "fairly.",
        "10–50 trials for 1–4 parameters; more parameters need more trials. Start with the learning rate: it "
        "matters most.",
        "Choosing settings by their test score (it then stops being an honest estimate: use validation); "
        "searching too many parameters with too few trials."),
    "grid-search": _e(
        "Tries every combination of a fixed list of values for each parameter (floats need a step).",
        "For 1–2 parameters with a few values each, when you want to see the whole picture, e.g. 3 learning "
        "rates × 2 batch sizes.",
        "2–5 values per parameter; the number of trials is the product of the counts (3 × 3 × 3 = 27).",
        "The grid grows multiplicatively with each parameter; it wastes trials on parameters that do not matter. "
        "If the budget is smaller than the grid, only part of it runs."),
    "random-search": _e(
        "Every trial draws each parameter at random from its range, independently of earlier trials.",
        "As a strong, simple baseline, when trials run in parallel, or when you do not know which parameters "
        "matter.",
        "20+ trials; use a log scale for rates and decay (1e-5 to 1e-1).",
        "It does not learn from finished trials, so with a small budget a learning sampler (TPE) usually finds "
        "better values."),
    "bayesian-optimisation": _e(
        "A family of search methods that build a model of how the score depends on the settings from finished "
        "trials, and choose the next trial where an improvement looks likely.",
        "When each trial is expensive and the budget is small (tens of trials).",
        "A few random start-up trials (5–10), then model-guided ones.",
        "Many parallel trials blunt it (they start before earlier ones have informed the model); very noisy "
        "scores mislead it."),
    "tpe": _e(
        "TPE (Tree-structured Parzen Estimator) learns from finished trials which values look promising and "
        "samples more of those; Optuna's default.",
        "A good default for most sweeps, with numeric and categorical parameters mixed.",
        "Here the first trials (2–10, a third of the budget) are random, then TPE takes over; 20–100 trials.",
        "With fewer than ~10 trials it is little better than random; it treats parameters mostly independently, "
        "so strongly linked ones (lr and batch size) are learned slowly."),
    "cma-es": _e(
        "CMA-ES (Covariance Matrix Adaptation Evolution Strategy) moves a cloud of candidate settings towards "
        "good regions, learning how the numeric parameters interact.",
        "For several numeric parameters (floats and ints) and a budget of 50+ trials.",
        "50–500 trials; 2–10 numeric parameters.",
        "Categorical parameters are sampled at random, not by CMA-ES; with a small budget it barely starts "
        "adapting."),
    "nsga-ii": _e(
        "NSGA-II is a genetic algorithm made for several objectives at once (e.g. accuracy and model size): it "
        "keeps the Pareto front of trials that no other trial beats on every objective.",
        "When a sweep has two or more objectives.",
        "50+ trials; 2–3 objectives.",
        "With one objective TPE is usually better; a small budget gives a sparse, noisy front."),
    "quasi-monte-carlo": _e(
        "Quasi-Monte Carlo (a Sobol sequence) spreads trials evenly over the search space: better coverage "
        "than random, with no learning.",
        "For a first exploration of a space, or when many trials run in parallel.",
        "A power of two of trials (16, 32, 64) covers the space most evenly.",
        "Like random search it does not learn from results; categorical parameters are drawn at random."),
    "multi-objective-optimisation": _e(
        "Optimising several metrics at once (e.g. accuracy and model size or speed). The answer is a Pareto "
        "front: the trials no other trial beats on every metric, each a different trade-off.",
        "When you care about more than one metric and want to see the trade-offs before choosing.",
        "2 objectives, sometimes 3; 50+ trials with NSGA-II.",
        "Pruning is not possible with several objectives (the pruner is set to none); too many objectives make "
        "almost every trial Pareto-optimal."),
    "early-stopping-of-trials": _e(
        "Pruning stops unpromising trials of a sweep early, from the metric they report after each epoch, so "
        "the budget goes to the promising ones. No pruning: every trial trains all its epochs.",
        "When trials train for several epochs and bad settings show early (a diverging loss, a low accuracy).",
        "Median for a start; ASHA or Hyperband when trials are long and numerous. None for short trials of 1–2 "
        "epochs.",
        "Prunes slow starters that would have won (a low learning rate starts slowly); needs a per-epoch "
        "metric, not one known only at the end."),
    "asha": _e(
        "ASHA (asynchronous successive halving): at rungs of 1, 3, 9… epochs it keeps only the best third of "
        "the trials that reached the rung; the rest stop.",
        "Many trials of several epochs each, running in parallel.",
        "Here rungs at 1, 3, 9… epochs with a reduction factor of 3; 30+ trials.",
        "Judges very early (after 1 epoch): settings that start slowly are cut. With few trials little is "
        "pruned."),
    "hyperband": _e(
        "Hyperband runs several successive-halving brackets with different start-up budgets, so early stopping "
        "is not all-or-nothing: some brackets judge after 1 epoch, others much later.",
        "Like ASHA, when you do not know how early a trial's quality shows.",
        "Trials of 5+ epochs; 30+ trials.",
        "Needs enough trials to fill its brackets; more complex to read than median pruning."),
    "median-pruning": _e(
        "The median stopping rule: after 3 finished trials, stops a trial whose value at an epoch is worse than "
        "the median of earlier trials at that epoch.",
        "A safe first pruner for most sweeps of 3+ epochs.",
        "Here it starts after 3 trials and never judges the first 2 epochs of a trial.",
        "Prunes about half of the trials that are below average, including late bloomers; the first trials are "
        "never pruned."),

    # --- model optimisation ------------------------------------------------------------------------------------
    "model-optimisation": _e(
        "The optimizer is the algorithm that adjusts the model's weights after each batch, following the "
        "gradient of the training loss.",
        "Every run uses one; Adam or AdamW is the safe default, SGD with momentum often generalises better on "
        "images with a tuned schedule.",
        "adam/adamw with lr 1e-3 (3e-4 for transformers); sgd with lr 0.01–0.1 and momentum 0.9.",
        "Each optimizer needs its own learning rate: switching from adam to sgd without raising it tenfold "
        "makes training crawl."),
    "sgd": _e(
        "Stochastic gradient descent: moves each weight against its gradient by the learning rate, optionally "
        "with momentum (and Nesterov momentum).",
        "Image models (CNNs, ResNets) trained long enough with a schedule, where it often generalises best.",
        "lr 0.01–0.1, momentum 0.9, weight decay 1e-4–5e-4, with a cosine or step schedule.",
        "Sensitive to the learning rate; without momentum it is slow; it needs more epochs than Adam."),
    "adam": _e(
        "Adaptive moment estimation: each weight gets its own step size from running averages of its gradients "
        "and their squares.",
        "A robust default for most models and data, especially tables, transformers and quick experiments.",
        "lr 1e-3 (1e-4–3e-3); betas (0.9, 0.999).",
        "Its weight decay is coupled with the adaptive steps and works poorly: use AdamW when you want weight "
        "decay. A learning rate above ~1e-2 often diverges."),
    "adamw": _e(
        "Adam with weight decay decoupled from the gradient step, so decay works as intended.",
        "The default for transformers and whenever you regularise with weight decay.",
        "lr 1e-3 (3e-4 for transformers); weight decay 0.01–0.1.",
        "With weight decay 0 it is the same as Adam; a decay above ~0.1 can underfit."),
    "adagrad": _e(
        "Scales each weight's step by the sum of all its past squared gradients, so frequently updated weights "
        "slow down.",
        "Sparse features (many rare categories), or convex models; rarely the best choice for deep networks.",
        "lr 0.01–0.1 (PyTorch's default is 0.01).",
        "Its steps only ever shrink, so long runs stall; prefer Adam for deep models."),
    "rmsprop": _e(
        "Scales each weight's step by a running average of its recent squared gradients.",
        "Recurrent networks and some reinforcement-learning setups; otherwise Adam usually does as well.",
        "lr 1e-3 (1e-4–1e-2), momentum 0–0.9.",
        "Sensitive to the learning rate; momentum here is its own setting, unlike Adam's built-in one."),
    "learning-rate-schedule": _e(
        "Changes the learning rate during training instead of keeping it constant: usually a warm-up, then a "
        "decrease (step, cosine, one-cycle). None keeps it constant.",
        "Runs of more than a few epochs: a falling learning rate lets the model settle into a better minimum.",
        "cosine to 0 over the run is a good default; onecycle for short runs; step for classic image recipes.",
        "A schedule tuned for 100 epochs does not fit a 5-epoch run; early stopping or pruning can stop a run "
        "before its low-rate phase."),
    "learning-rate": _e(
        "How large a step the optimizer takes at each update. The single most important setting: too high and "
        "the loss explodes, too low and nothing is learned.",
        "Always set; tune it first (a sweep over a log scale), and again when you change optimizer, batch size "
        "or model.",
        "adam/adamw 1e-3 (3e-4 for transformers), sgd 0.01–0.1; search 1e-5 to 1e-1 on a log scale.",
        "A loss that becomes NaN or jumps up means too high; a flat loss from the start often means too low. "
        "Raising the batch size usually needs a higher rate."),
    "batch-size": _e(
        "How many samples are averaged into one gradient step. Here it is the global batch, split evenly across "
        "the processes.",
        "Always set: larger batches use the GPU better and train faster per epoch; smaller ones give noisier, "
        "sometimes better-generalising steps.",
        "32–256; powers of two; as large as GPU memory allows for big models.",
        "Out of GPU memory means too large; with several processes it must divide by their number; doubling it "
        "usually needs a higher learning rate."),
    "epochs": _e(
        "How many full passes over the training data a run makes (maximum steps can cut it shorter).",
        "Always set: enough for the validation metric to level off, not much more.",
        "10–50 for small tables and images; 1–5 when fine-tuning a pretrained model.",
        "Too many epochs overfit (validation loss rises while training loss falls): use early stopping. A "
        "schedule stretches over all epochs, so changing epochs changes the schedule."),
    "momentum": _e(
        "Keeps part of the previous steps' direction in each new step, which smooths noisy gradients and speeds "
        "up progress along consistent directions. Nesterov momentum looks one step ahead.",
        "Always with SGD (plain SGD is slow); optional with RMSprop. Adam has momentum built in.",
        "0.9 (0.8–0.99); Nesterov on or off makes a small difference.",
        "High momentum with a high learning rate can overshoot and diverge; Nesterov needs momentum > 0."),
    "gradient-clipping": _e(
        "Caps the overall size (norm) of the gradient before each step, so one bad batch cannot throw the "
        "weights far off.",
        "Transformers and recurrent networks, a loss with sudden spikes, or mixed precision with fp16. Empty = "
        "no clipping.",
        "A maximum norm of 1.0 (0.5–5).",
        "A very small value slows learning as much as a low learning rate; it hides, rather than fixes, a "
        "learning rate that is too high."),
    "learning-rate-warmup": _e(
        "Raises the learning rate linearly from 0 to its target over the first epochs, so the early steps on "
        "random weights are gentle.",
        "Large batches, transformers, high learning rates, or a loss that spikes in the first epoch. onecycle "
        "warms up on its own.",
        "0.5–2 epochs, or about 5% of the run.",
        "A warm-up as long as the run never reaches the target rate; pruners may judge a trial still warming "
        "up."),
    "step-decay": _e(
        "Multiplies the learning rate by a factor (gamma) every few epochs (step size).",
        "Classic image recipes with SGD, when you know roughly when the loss plateaus.",
        "gamma 0.1 every 30% of the epochs, or 0.5 every few epochs.",
        "Sudden drops make the curves jumpy; a step size longer than the run means no decay at all."),
    "cosine-annealing": _e(
        "Lowers the learning rate smoothly along a half cosine curve, from its starting value to 0 at the last "
        "epoch.",
        "A good default schedule for runs of 10+ epochs, with any optimizer.",
        "Over the whole run, often with 1–2 epochs of warm-up.",
        "Stopping early (early stopping, pruning) cuts it before its low-rate end, where most of its benefit "
        "lies."),
    "one-cycle": _e(
        "The one-cycle policy raises the learning rate to a peak (the learning rate you set) during the first "
        "part of the run, then lowers it far below the start.",
        "Short runs where you want fast convergence; works well with SGD and Adam.",
        "Set lr to the peak, about 3–10× a usual constant rate (e.g. 0.01 for Adam); it warms up by itself.",
        "The learning rate you enter is the peak, not the start; a separate warm-up is ignored."),

    # --- regularisation ------------------------------------------------------------------------------------------
    "regularisation": _e(
        "Techniques that stop a model from memorising its training data, so it does better on data it has not "
        "seen: weight decay, dropout, augmentation, label smoothing, early stopping.",
        "When the training score is much better than the validation score (overfitting).",
        "Start with one or two: weight decay plus augmentation for images, dropout or weight decay for tables.",
        "Too much regularisation underfits (both scores stay poor); it cannot make up for too little data of "
        "the right kind."),
    "weight-decay": _e(
        "Pulls every weight a little towards 0 at each step, which favours simpler models that generalise "
        "better (an L2 penalty; decoupled for AdamW).",
        "When the model overfits, and by default with AdamW and SGD on images.",
        "AdamW 0.01–0.1; SGD 1e-4–5e-4; 0 = off.",
        "With Adam it works poorly (use AdamW); too much makes the model underfit; large values with sgd can "
        "stall training."),
    "label-smoothing": _e(
        "Trains a classifier towards slightly softened labels (e.g. 0.9 for the right class instead of 1.0), so "
        "it does not become over-confident.",
        "Classification with many classes, noisy labels or an over-confident model; not for regression.",
        "0.05–0.1 (0 = off); values must be from 0 to below 1.",
        "The training loss never reaches 0 with smoothing, which is expected; large values blur the classes and "
        "hurt accuracy."),
    "dropout": _e(
        "Switches off a random fraction of a layer's units at each training step (never at evaluation), so the "
        "network cannot rely on any single unit.",
        "Fully connected layers and transformers that overfit; less useful in CNNs with batch normalisation.",
        "0.1–0.5 (the probability of dropping a unit); 0.1 for transformers.",
        "Too much slows training and underfits; the training loss looks worse than the validation loss because "
        "dropout is on only during training."),
    "early-stopping": _e(
        "Ends a run when a validation metric has not improved for a number of epochs (the patience); the best "
        "checkpoint is kept.",
        "Whenever you are unsure how many epochs are needed, or the model starts to overfit.",
        "Watch val_loss (or val_accuracy), patience 3–10 epochs, minimum change 0–0.001.",
        "A short patience stops during a temporary plateau; it cuts a learning-rate schedule short; a wrong "
        "mode (max for a loss) stops almost at once: auto picks max for accuracy and R², min otherwise."),

    # --- numerical and systems settings ---------------------------------------------------------------------------
    "mixed-precision-training": _e(
        "Computes most of the training in 16-bit numbers (bf16 or fp16) instead of 32-bit where it is safe: "
        "about twice as fast on modern GPUs, with less memory.",
        "GPU runs, especially large models. bf16 on recent GPUs (A100, H100); fp16 on older ones. CPU runs "
        "train in fp32.",
        "bf16 when the GPU supports it, else fp16; none for CPU.",
        "fp16 can overflow into NaN losses (a loss scaler guards against it; clip gradients too); fp16 is "
        "refused on CPU and bf16 falls back to fp32 there."),
    "reproducibility": _e(
        "The seed fixes the random choices (initial weights, data order, augmentation); deterministic mode also "
        "makes GPU maths repeatable, so a run can be repeated exactly.",
        "Always keep a seed; turn deterministic on when you must reproduce a result exactly (a resumed run "
        "then ends with the same weights).",
        "Any whole number as seed (0, 1, 2…); repeat an experiment over 3 seeds to see how much luck is in it.",
        "Deterministic mode is slower on GPU; a difference smaller than the spread between seeds is noise, not "
        "an improvement."),
    "gpu-training": _e(
        "Running the training maths on graphics processors (GPUs), typically 10–50× faster than a CPU for "
        "neural networks. GPUs per node = 0 trains on the CPU.",
        "Images, transformers and anything beyond small tables; small tabular models train fine on a CPU.",
        "1 GPU per process; 0 for small tables and quick tests.",
        "Slow data loading can leave a GPU idle; a run asking for more GPUs than any worker has waits in its "
        "queue."),
    "job-queue": _e(
        "A named line of waiting runs (cpu, gpu…) that workers take jobs from, in priority order; admins can "
        "pause or reorder queues.",
        "Pick the queue whose workers have the resources the run needs: gpu for GPU runs, cpu otherwise.",
        "cpu for CPU-only runs; gpu when GPUs per node > 0.",
        "A run in a paused queue, or one no worker serves, waits; a GPU run sent to a CPU queue is refused."),

    # --- distributed computing ----------------------------------------------------------------------------------
    "distributed-computing": _e(
        "Spreading training over several processes, devices or machines so it finishes sooner or fits at all.",
        "When one GPU is too slow for the data, or you have several GPUs available.",
        "1 process per GPU; 2–8 GPUs per machine.",
        "More processes add communication overhead: small models may get slower, not faster."),
    "data-parallelism": _e(
        "Each process holds a full copy of the model and trains on its own share of every batch; the gradients "
        "are averaged so all copies stay identical.",
        "When the model fits on one device but the data takes too long: the usual way to use several GPUs.",
        "1 process per GPU; the global batch is split across the processes.",
        "The batch size must divide by the number of processes; each process gets a smaller batch, which can "
        "change results."),
    "ddp": _e(
        "PyTorch DistributedDataParallel: data parallelism where several processes (processes per node) train "
        "copies of the model and average their gradients after each step.",
        "Set processes per node above 1 to use several GPUs of one worker (one process per GPU), or several CPU "
        "processes for a quick test.",
        "Processes per node = the number of GPUs you ask for; 1 = no distribution.",
        "The batch size must divide by the number of processes; on CPU more processes rarely speed things up; "
        "tiny models spend more time communicating than computing."),
    "nccl": _e(
        "NVIDIA's library for fast communication between GPUs; the backend torch.distributed uses for GPU runs.",
        "Automatically, for any multi-GPU run.",
        "Nothing to set: used whenever the run has GPUs.",
        "Network or driver trouble shows up as NCCL timeouts; it does not work without GPUs (gloo is used "
        "then)."),
    "gloo": _e(
        "The communication backend torch.distributed uses for CPU runs.",
        "Automatically, for distributed runs without GPUs.",
        "Nothing to set: used when a run has several processes and no GPUs.",
        "Much slower than NCCL; distributed CPU runs are mainly useful to test a setup."),
    "multi-node": _e(
        "Training on several machines at once, joined by a rendezvous (torchrun), each with its own processes.",
        "Only when one machine's GPUs are not enough: the network between machines is much slower than inside "
        "one.",
        "2–8 nodes with the same number of GPUs each.",
        "A slow or flaky network makes every step wait; all nodes must see the same data and code."),
    "distributed-system-design": _e(
        "How Trainyard keeps many machines consistent when parts fail: leases on runs, idempotent jobs, an "
        "outbox for the graph, retries.",
        "Background knowledge: it explains why a lost run is re-queued and resumes from its last checkpoint.",
        "A run's lease is renewed by heartbeats; a lost run is retried up to 3 times.",
        "A run can appear queued again after its worker disappears: that is the recovery, not a new run."),
    "knowledge-graphs": _e(
        "Linking experiments, data, models and concepts as a graph, so questions like 'which runs used this "
        "dataset' or 'what worked on similar data' can be answered.",
        "To explore the lineage of a model, or to find which settings worked best across the team's runs.",
        "Open a node's neighbourhood on the Knowledge graph page; ask the ready-made questions.",
        "The graph follows the database a few seconds behind; it shows only your projects' objects."),

    # --- transfer learning --------------------------------------------------------------------------------------
    "transfer-learning": _e(
        "Reusing what a model learned on one task or dataset for another, instead of starting from random "
        "weights.",
        "When your dataset is small but a related, larger one (or an earlier run) exists.",
        "Fine-tune from an earlier run's best checkpoint for 1–5 epochs with a lower learning rate.",
        "Transfer from very different data can help little or even hurt; compare with a run from scratch."),
    "fine-tuning": _e(
        "Continues training from the weights of an earlier run (its best checkpoint) on new data; the output "
        "layer is replaced for the new classes.",
        "Small datasets, or a new dataset similar to one a model was already trained on.",
        "A learning rate 3–10× lower than from scratch (e.g. 1e-4 with Adam); 1–5 epochs.",
        "A high learning rate destroys what was learned; the input shape must match the earlier model."),
    "freezing-layers": _e(
        "Keeps chosen layers of a fine-tuned model fixed (not trained) while the rest trains; here you list "
        "them by name prefix (layer1, layer2…).",
        "When fine-tuning on very little data: freeze the early, general layers and train the later ones.",
        "Freeze the first half of the layers; unfreeze more if the validation score stalls.",
        "Freezing everything leaves nothing to learn (a flat loss); a misspelled prefix freezes nothing."),

    # --- architectures ------------------------------------------------------------------------------------------
    "architectures": _e(
        "The family of neural network a design belongs to (MLP, CNN, ResNet, transformer): it decides which "
        "patterns the model can pick up easily.",
        "Tables: MLP or tab transformer; small images: small CNN; larger images: ResNet; lots of data: "
        "transformers.",
        "Start with the preset the form suggests for your dataset, then try one bigger.",
        "A bigger model is not always better: on small data it overfits and trains slower."),
    "mlp": _e(
        "A multi-layer perceptron: stacked fully connected (Linear) layers with activations between them; every "
        "input feeds every unit.",
        "Tabular data and very small images; a strong, fast baseline.",
        "2–3 hidden layers of 64–512 units; ReLU; dropout 0–0.3.",
        "On images it ignores which pixels are neighbours and needs many parameters; scale the inputs first."),
    "cnn": _e(
        "A convolutional neural network: small learned filters slide over the image, so the same pattern is "
        "recognised wherever it appears.",
        "Images of any size; the small CNN preset is a good first try.",
        "Conv layers of 16–128 channels with 3×3 or 5×5 kernels, each followed by ReLU and pooling.",
        "Too much pooling shrinks small images to nothing (the designer shows each layer's shape); padding "
        "keeps the size."),
    "resnet": _e(
        "A CNN with residual (skip) connections that add a block's input to its output, which makes very deep "
        "networks trainable.",
        "Images where a small CNN is not accurate enough and there are thousands of samples or more.",
        "ResNet-18 first; 34 or 50 only with lots of data and a GPU.",
        "Slow on CPU; on small datasets they overfit without augmentation and weight decay."),
    "rnn": _e(
        "A recurrent neural network carries a state from one step of a sequence to the next.",
        "Sequences (time series, text) of modest length; transformers have mostly replaced them.",
        "1–2 layers of 64–256 units.",
        "Long sequences make gradients vanish or explode: clip gradients."),
    "attention": _e(
        "Lets every input position (pixel patch, table feature, word) weigh every other by relevance, so the "
        "model can relate distant parts of the input.",
        "Inside transformers; a self-attention layer in the builder adds it to your own design.",
        "1–8 heads; the width must divide by the number of heads.",
        "Costs grow with the square of the number of positions; it needs more data than convolutions."),
    "transformer": _e(
        "Stacked self-attention and feed-forward blocks: the ViT preset cuts images into patches, the tab "
        "transformer treats each table column as a token.",
        "Large image datasets (ViT) or tables with many categorical columns (tab transformer).",
        "AdamW, lr 3e-4–1e-3, warm-up, weight decay 0.05, gradient clipping 1.0.",
        "On small datasets they do worse than CNNs or MLPs; they are sensitive to the learning rate and need "
        "warm-up."),
    "batch-normalisation": _e(
        "Re-centres and re-scales a layer's outputs over each batch, which keeps values in a healthy range and "
        "makes training faster and more stable.",
        "After convolution or linear layers in deeper networks (before the activation).",
        "One after each conv layer in a CNN.",
        "Very small batches (under ~8 per process) make its statistics noisy; it behaves differently in "
        "training and evaluation."),
    "activation-function": _e(
        "The non-linear function applied after a layer (ReLU, GELU, Tanh, Sigmoid, LeakyReLU); without one, "
        "stacked layers collapse into one linear layer.",
        "After every hidden Linear or Conv2d layer; never after the output layer (the loss handles it).",
        "ReLU by default; GELU in transformers; LeakyReLU if many units die.",
        "Sigmoid and Tanh in deep networks make gradients vanish; an activation on the output layer limits "
        "what it can predict."),
    "pooling": _e(
        "Shrinks an image's feature maps by keeping the maximum (max pooling) or the average of each small "
        "patch; adaptive average pooling shrinks to a fixed size.",
        "After conv layers, to reduce the size step by step; adaptive pooling before the final Linear layers.",
        "kernel size 2 (halves height and width).",
        "Each pooling halves the image: a 8×8 input survives only three; the designer flags a shape that "
        "reaches 0."),

    # --- data preparation ---------------------------------------------------------------------------------------
    "data-preparation": _e(
        "Turning raw data into clean, comparable training inputs: reading, cleaning, scaling, splitting, "
        "augmenting.",
        "Before any training; most accuracy problems are data problems.",
        "Check the dataset page: class balance, missing values, feature ranges, previews.",
        "Information from the test split leaking into training makes scores look better than they are."),
    "data-cleaning": _e(
        "Removing or fixing broken, duplicate, mislabelled or incomplete samples before training.",
        "Always look first: the dataset page shows missing values, odd ranges and class balance.",
        "Drop a few percent of bad rows; fill missing values with the mean or most frequent value.",
        "Duplicates across train and test inflate the test score; silently dropped rows can remove a whole "
        "class."),
    "augmentation": _e(
        "Random, label-preserving changes to training images (crops, flips, rotations, colour jitter) each "
        "epoch, so the model sees more variety than the dataset holds.",
        "Image datasets where the model overfits or there are few images per class; the validation and test "
        "images are never changed.",
        "Random crop padding 2–4 px, horizontal flip on, rotation 10–15°, colour jitter 0.1–0.3.",
        "A change that alters the label hurts (flipping digits or text, rotating a 6 into a 9); it makes each "
        "epoch slower and training needs more epochs."),
    "normalisation": _e(
        "Scaling inputs to comparable ranges (mean 0, variance 1 per feature or channel) so no feature "
        "dominates by its units alone.",
        "Always for neural networks; Trainyard does it for you, with the training split's statistics.",
        "Mean 0 and standard deviation 1 per feature or image channel.",
        "Computing the statistics on all the data leaks the test split into training."),
    "splitting": _e(
        "Separating the data into a training split (to learn from), a validation split (to choose settings and "
        "stop early) and a test split (one honest final score). The seed makes the split repeatable.",
        "Every dataset; keep the same split (same seed) to compare runs fairly.",
        "0.8, 0.1, 0.1; for small datasets 0.7, 0.15, 0.15 so validation is not tiny.",
        "Choosing settings by the test score makes it optimistic; a different split seed makes runs "
        "incomparable; tiny validation splits give noisy scores."),
    "learning-task": _e(
        "What the model predicts: one of a set of labels (classification) or a number (regression). Detect "
        "guesses it from the target column (text, or whole numbers with at most 20 distinct values = "
        "classification).",
        "Leave detect on unless the guess is wrong, e.g. a numeric class code (1, 2, 3) or a count you want "
        "predicted as a number.",
        "Classification for labels and categories; regression for prices, amounts, measurements.",
        "A numeric label column read as regression gives meaningless decimals; metrics differ (accuracy vs "
        "MAE/R²)."),
    "classification": _e(
        "Predicting one of a fixed set of labels (a digit, a species, churn yes/no); measured by accuracy and "
        "macro F1.",
        "When the target is a category, even if it is written as a number.",
        "Accuracy and macro F1 on the test split; check the confusion matrix.",
        "With unbalanced classes accuracy flatters (always predicting the majority class scores high): look at "
        "macro F1."),
    "regression": _e(
        "Predicting a number on a continuous scale (a price, a temperature); measured by MAE, RMSE and R².",
        "When the target is a quantity where 'how far off' matters.",
        "R² close to 1 is good, 0 is no better than predicting the mean; MAE in the target's units.",
        "Outliers in the target dominate RMSE; scaling the target changes MAE and RMSE but not R²."),
    "features-and-target": _e(
        "The target column is what the model predicts; the feature columns are the inputs it learns from.",
        "Name the target when it is not the last column; list features to leave out identifiers and columns "
        "that give the answer away.",
        "Default: the last column is the target, all the others are features.",
        "An ID or a column computed from the target (leakage) gives near-perfect scores that fail in practice."),
    "missing-values": _e(
        "Empty or unreadable cells in a table. They are filled with the column's mean or most frequent value, "
        "the rows are dropped, or the file is refused.",
        "Fill with the mean for numbers (the most frequent value for categories) when a few cells are missing; "
        "drop rows when few rows are affected.",
        "Fill with the mean for under ~5% missing; check the dataset page for columns that are mostly empty.",
        "Dropping rows can remove most of the data or a whole class; filling hides that a value was missing."),
    "file-parsing": _e(
        "How a table file is read: the character between columns (delimiter), the text encoding, and whether "
        "the first row holds column names (header).",
        "Leave on detect; set them only if the preview shows one merged column or garbled characters.",
        "Delimiter , or ; or tab; encoding utf-8 (cp1252 for older Excel exports); header yes.",
        "A wrong delimiter gives one column; a missing header turns the first data row into column names."),
    "image-size": _e(
        "The height and width every image is resized to when the dataset is processed, so they can be batched.",
        "Set it when images differ in size and you want a specific size; by default the most common size is "
        "used.",
        "28×28 or 32×32 for small images; 64–224 for photos (larger = slower).",
        "Shrinking too much loses detail; very large images slow training and may not fit in memory."),

    # --- training problems (what the run-health checks find in a run) -----------------------------------------
    "training-problems": _e(
        "The usual ways a training run goes wrong, recognised from its loss curves and hardware: overfitting, "
        "underfitting, divergence, a NaN or flat loss, a GPU waiting for data. Each has a usual cause and fix.",
        "Watch for them on the run page while a run trains: a warning names the problem and suggests a fix.",
        "Most first runs show one: a flat or diverging loss points at the learning rate, overfitting at too "
        "little regularisation.",
        "Changing several settings at once to fix one problem hides which change helped: change one, "
        "relaunch, compare."),
    "overfitting": _e(
        "The model memorises its training samples: the validation loss rises while the training loss keeps "
        "falling, so it does worse on new data.",
        "Suspect it when training accuracy is far above validation accuracy, especially on small datasets or "
        "with big models.",
        "Fixes: data augmentation (images), weight decay 0.01–0.1 with AdamW, dropout 0.1–0.5, early stopping, "
        "a smaller model or more data.",
        "Judging from the training score alone hides it; a test score used to pick settings overfits too, more "
        "quietly."),
    "underfitting": _e(
        "The model stays poor even on its training data: it is too small, too regularised, or has not trained "
        "long enough.",
        "Suspect it when training and validation scores are both low and close to each other.",
        "Fixes: more epochs, a larger model (more layers or units), less weight decay or dropout, a tuned "
        "learning rate.",
        "Adding regularisation to an underfitting model makes it worse; check the data and labels too, a "
        "broken target column looks the same."),
    "divergence": _e(
        "The training loss grows instead of falling: the optimizer's steps overshoot, usually because the "
        "learning rate is too high.",
        "Suspect it when the loss rises epoch after epoch, or is far worse than guessing.",
        "Fixes: lower the learning rate 3–10×, add warm-up (1 epoch), clip gradients at 1.0.",
        "A larger batch or a switch from Adam to SGD changes the right learning rate; mixed precision with fp16 "
        "can diverge where fp32 does not."),
    "nan-loss": _e(
        "The loss overflowed to NaN (not a number) or infinity; the engine stops the run, since nothing more "
        "can be learned from it.",
        "It almost always follows a learning rate that is too high, or fp16 mixed precision without clipping.",
        "Fixes: lower the learning rate 10×, clip gradients at 1.0, use bf16 or no mixed precision.",
        "Bad input values (infinities, huge numbers in a table) cause it too: check the dataset's statistics."),
    "flat-loss": _e(
        "The loss does not move from the start: nothing is being learned.",
        "Suspect it when the first epochs' loss stays at the level of a random guess.",
        "Fixes: raise the learning rate 3–10×, unfreeze layers, check that the target column is right.",
        "Freezing every layer or a learning rate of 1e-6 both look like this; so do shuffled or constant "
        "labels."),
    "input-bound": _e(
        "The GPU waits for data: loading and preparing batches, not the model's maths, limit the speed.",
        "Suspect it when GPU utilisation stays low (under ~30%) during training.",
        "Fixes: a larger batch, fewer or cheaper augmentations; for a small model, a CPU or a smaller GPU.",
        "A tiny model on a big GPU is nearly always input-bound, whatever you change: it is wasted GPU time, "
        "not a broken run."),

    # --- sweeps ----------------------------------------------------------------------------------------------
    "search-space": _e(
        "The settings a sweep varies and the range or choices of each: float (a real number between low and "
        "high), int (a whole number) or categorical (one of a list). Log samples evenly in orders of magnitude.",
        "List only the settings you expect to matter; keep the rest fixed in the base settings.",
        "lr float 1e-5–1e-1 log; batch_size categorical 32, 64, 128; weight_decay float 1e-6–1e-1 log.",
        "Ranges that are too narrow miss the best value; a log scale needs low > 0; every extra parameter needs "
        "more trials."),
    "objective-metric": _e(
        "The metric a sweep tries to improve and its direction: maximize accuracy, F1 or R², minimize losses "
        "and errors.",
        "Choose a validation metric reported after every epoch, so pruners can use it.",
        "val_accuracy (maximize) for classification; val_loss or val_rmse (minimize) for regression.",
        "Optimising a test metric spoils the test split; a metric known only at the end cannot be pruned on."),
    "trial-budget": _e(
        "How much a sweep may spend: a number of trials, and optionally a total time or a target value that "
        "ends it early.",
        "Always: more trials find better settings, with diminishing returns.",
        "10× the number of searched parameters as a start (20–50 trials).",
        "A grid larger than the budget runs only in part; a time limit stops trials mid-way."),
    "parallel-trials": _e(
        "How many trials of a sweep train at the same time on the fleet; you can change it while the sweep "
        "runs.",
        "Raise it when workers are idle; keep it low for learning samplers (TPE) that improve with each "
        "finished trial.",
        "2–4, or the number of free workers.",
        "Many parallel trials make TPE behave like random search; trials compete for the same workers as other "
        "runs."),
    "warm-starting": _e(
        "Running known good settings first (from an earlier run or a recommendation) before the sampler takes "
        "over, so the search starts from experience.",
        "When you already have a good configuration, or the team's history on similar data.",
        "1–5 starting points, one JSON object per line.",
        "Starting points with settings outside the search space are refused; too many leave little budget for "
        "exploring."),
}
