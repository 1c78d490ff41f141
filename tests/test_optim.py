import torch

from reach_core.optim import set_lr


def test_set_lr_fills_a_capturable_adams_tensor_in_place_and_sets_a_plain_adams_float():
    w = torch.nn.Parameter(torch.zeros(3))
    graphed = torch.optim.Adam([w], lr=torch.tensor(1e-3), capturable=True)
    held = graphed.param_groups[0]["lr"]
    set_lr(graphed, 2.5e-4)
    assert graphed.param_groups[0]["lr"] is held          # the tensor a graph would read
    assert held.item() == torch.tensor(2.5e-4).item()
    plain = torch.optim.Adam([w], lr=1e-3)
    set_lr(plain, 2.5e-4)
    assert plain.param_groups[0]["lr"] == 2.5e-4 and not torch.is_tensor(plain.param_groups[0]["lr"])
