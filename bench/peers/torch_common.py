"""PyTorch side shared by torchdiffeq_bench.py and torchdyn_bench.py: the
vector fields, losses and optimisers of W1..W5, built from the numpy recipe
in common.py (same data, same initial parameters as diffrax_bench.py).

NFE counting: every field counts its own calls (self.ncalls). nfe_f = calls
made during the forward solve (including the initial-step heuristic and
rejected steps); nfe_b = calls made inside loss.backward(). With direct
backpropagation through the solver ("direct"/"autograd") torch replays the
recorded graph and makes no calls, so nfe_b = 0 there (the backward still
does one VJP per recorded forward evaluation); with the adjoints every
evaluation of the augmented (adjoint) dynamics calls the field once.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import CFG, make_workload


def _set(layer, w, b):
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))


def _linears(params, sizes):
    d = dict(params)
    layers = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        _set(lin, d[f"l{i}.w"], d[f"l{i}.b"])
        layers.append(lin)
    return nn.ModuleList(layers)


class Counted(nn.Module):
    def __init__(self):
        super().__init__()
        self.ncalls = 0


class W1Field(Counted):
    """f(t, y) = Linear(50,2)(tanh(Linear(2,50)(y**3)))  (torchdiffeq ode_demo)."""

    def __init__(self, params):
        super().__init__()
        self.l = _linears(params, [2, 50, 2])

    def forward(self, t, x, args=None):
        self.ncalls += 1
        return self.l[1](torch.tanh(self.l[0](x ** 3)))


class W2Field(Counted):
    """f(t, z) = Linear(2000,2)(softplus(Linear(2,2000)(z)))."""

    def __init__(self, params):
        super().__init__()
        self.l = _linears(params, [2, 2000, 2])

    def forward(self, t, x, args=None):
        self.ncalls += 1
        return self.l[1](F.softplus(self.l[0](x)))


class W3Field(Counted):
    """f(t, z) = Linear(256,64)(tanh(Linear(256,256)(tanh(Linear(64,256)(z)))))."""

    def __init__(self, params):
        super().__init__()
        self.l = _linears(params, [64, 256, 256, 64])

    def forward(self, t, x, args=None):
        self.ncalls += 1
        h = torch.tanh(self.l[0](x))
        h = torch.tanh(self.l[1](h))
        return self.l[2](h)


class W4Field(Counted):
    """CNF on the (B, 3) state [z, a]: dz/dt = g(z), da/dt = tr(dg/dz) exactly
    (two VJPs), g = MLP 2-64-64-64-2 with tanh."""

    def __init__(self, params):
        super().__init__()
        self.l = _linears(params, [2, 64, 64, 64, 2])

    def g(self, z):
        for lin in self.l[:-1]:
            z = torch.tanh(lin(z))
        return self.l[-1](z)

    def forward(self, t, x, args=None):
        self.ncalls += 1
        create_graph = torch.is_grad_enabled()  # False in an adjoint's forward solve
        with torch.enable_grad():
            z = x[:, :2]
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            gz = self.g(z)
            tr = 0.0
            for i in range(2):
                gi = torch.autograd.grad(gz[:, i].sum(), z, create_graph=True)[0]
                tr = tr + gi[:, i]
        if not create_graph:
            gz, tr = gz.detach(), tr.detach()
        return torch.cat([gz, tr[:, None]], 1)


class W5Field(Counted):
    """torchdiffeq odenet_mnist ODEfunc: GN, ReLU, ConcatConv(3x3), GN, ReLU,
    ConcatConv(3x3), GN; the time channel is concatenated FIRST."""

    def __init__(self, params):
        super().__init__()
        d = dict(params)
        self.gn = nn.ModuleList([nn.GroupNorm(32, 64) for _ in range(3)])
        for i, gn in enumerate(self.gn):
            _set(gn, d[f"gn{i + 1}.w"], d[f"gn{i + 1}.b"])
        self.conv = nn.ModuleList([nn.Conv2d(65, 64, 3, padding=1) for _ in range(2)])
        for i, c in enumerate(self.conv):
            _set(c, d[f"conv{i + 1}.w"], d[f"conv{i + 1}.b"])

    def _cat_t(self, t, x):
        return torch.cat([torch.ones_like(x[:, :1]) * t, x], 1)

    def forward(self, t, x, args=None):
        self.ncalls += 1
        out = torch.relu(self.gn[0](x))
        out = self.conv[0](self._cat_t(t, out))
        out = torch.relu(self.gn[1](out))
        out = self.conv[1](self._cat_t(t, out))
        return self.gn[2](out)


FIELDS = {"W1": W1Field, "W2": W2Field, "W3": W3Field, "W4": W4Field, "W5": W5Field}


class Problem:
    """Everything one (workload, mode) needs apart from the solve itself."""

    def __init__(self, w):
        self.w = w
        self.cfg = CFG[w]
        wl = make_workload(w)
        data = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in wl["data"].items()}
        self.field = FIELDS[w](wl["params"])
        self.head = None
        params = list(self.field.parameters())
        if w == "W1":
            self.y0, self.t, self.target = data["y0"], data["t"], data["y"]
        elif w in ("W2", "W3"):
            self.y0, self.t = data["z0"], torch.tensor([0.0, 1.0])
        elif w == "W4":
            self.y0, self.t = data["s0"], torch.tensor([0.0, 1.0])
        elif w == "W5":
            self.y0, self.t = data["x"], torch.tensor([0.0, 1.0])
            self.labels = data["labels"].long()
            d = dict(wl["params"])
            self.head = nn.Linear(64, 10)
            _set(self.head, d["head.w"], d["head.b"])
            params += list(self.head.parameters())
        self.params = params
        self.params0 = [p.detach().clone() for p in params]
        c = self.cfg
        if c["opt"] == "rmsprop":
            self.opt = torch.optim.RMSprop(params, lr=c["lr"])  # alpha .99, eps 1e-8
        elif c["opt"] == "adam":
            self.opt = torch.optim.Adam(params, lr=c["lr"])
        else:
            self.opt = torch.optim.SGD(params, lr=c["lr"], momentum=c["momentum"])

    def loss(self, sol):
        """sol: solution stacked over self.t, shape (len(t), *y0.shape)."""
        w = self.w
        if w == "W1":
            return torch.mean(torch.abs(sol - self.target))
        z1 = sol[-1]
        if w in ("W2", "W3"):
            return torch.mean(z1 ** 2)
        if w == "W4":
            z, a = z1[:, :2], z1[:, 2]
            return torch.mean(0.5 * (z ** 2).sum(1) + math.log(2 * math.pi) - a)
        logits = self.head(z1.mean(dim=(2, 3)))
        return F.cross_entropy(logits, self.labels)

    def reset(self):
        """Restore the initial parameter values (optimiser state is kept)."""
        with torch.no_grad():
            for p, p0 in zip(self.params, self.params0):
                p.copy_(p0)

    def make_step(self, solve):
        """solve(field, y0, t) -> solution stacked over t."""
        field, opt = self.field, self.opt

        def step():
            opt.zero_grad(set_to_none=True)
            field.ncalls = 0
            sol = solve(field, self.y0, self.t)
            nf = field.ncalls
            loss = self.loss(sol)
            loss.backward()
            nb = field.ncalls - nf
            opt.step()
            return float(loss.detach()), nf, nb

        return step
