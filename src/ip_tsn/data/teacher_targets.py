"""Dataset wrappers that add the teacher's side to a student sample: its cached outputs on the
same positions and view (:class:`TeacherTargets`), or its own input there, for an online teacher
(:class:`TeacherInputs`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .teacher_cache import TeacherCache


class TeacherTargets(Dataset):
    """Wrap a dataset of sample dicts, adding the teacher's ``teacher_logits`` (K, C) and
    ``teacher_features`` (K, D) float32 at ``sample["frame_index"]`` (K,) of
    ``sample["video_id"]``, in the sample's view ``sample["view"]`` (default 0)."""

    def __init__(self, dataset: Dataset, cache: TeacherCache) -> None:
        self.dataset = dataset
        self.cache = cache

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        logits, features = self.cache.lookup(sample["video_id"], sample["frame_index"], int(sample.get("view", 0)))
        sample["teacher_logits"] = torch.from_numpy(logits)
        sample["teacher_features"] = torch.from_numpy(features)
        return sample



class TeacherInputs(Dataset):
    """Wrap a dataset of sample dicts, adding the teacher's own input ``teacher_input``
    (K, 2L, crop, crop): the flow stacks that end at ``sample["frame_index"]``, in the sample's
    view. For ``distill.online_teacher``: the teacher then runs on the student's exact view."""

    def __init__(self, dataset: Dataset, flow_view: Any) -> None:
        self.dataset = dataset
        self.flow_view = flow_view  # callable (video_id, frame_index (K,), view) -> (K, C, H, W) tensor

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        sample["teacher_input"] = self.flow_view(sample["video_id"], np.asarray(sample["frame_index"]),
                                                 int(sample.get("view", 0)))
        return sample
