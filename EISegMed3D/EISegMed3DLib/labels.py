"""Label maps <-> segments: one segment per label value, names and values from the data folder's label table."""
from __future__ import annotations

import numpy as np

from .geometry import full_box, scan_to_segmentation
from .segment_writer import read_segment, write_segment


def value_names(label_table: list) -> dict:
    return {int(entry["labelValue"]): entry["name"] for entry in label_table}


def complete_table(label_table: list, segment_names: list) -> list:
    """The label table plus an entry (next free value) for every segment name it lacks; nothing is dropped."""
    table = [dict(entry) for entry in label_table]
    known = {entry["name"] for entry in table}
    used = {int(entry["labelValue"]) for entry in table}
    for name in segment_names:
        if name in known:
            continue
        value = 1
        while value in used:
            value += 1
        table.append({"name": name, "labelValue": value})
        known.add(name)
        used.add(value)
    return table


def add_label_segments(segmentation_node, volume_node, label_kji: np.ndarray, label_table: list) -> list:
    """Add one segment per non-zero value of the label map (named from the table); returns the segment IDs."""
    names = value_names(label_table)
    to_seg = scan_to_segmentation(volume_node, segmentation_node)
    segmentation = segmentation_node.GetSegmentation()
    ids = []
    for value in (int(v) for v in np.unique(label_kji) if v != 0):
        segment_id = segmentation.AddEmptySegment("", names.get(value, f"Label {value}"))
        write_segment(segmentation_node, segment_id, to_seg, full_box(label_kji.shape), label_kji == value)
        ids.append(segment_id)
    return ids


def label_from_segments(segmentation_node, volume_node, label_table: list) -> tuple:
    """(label map [k, j, i] on the scan grid, completed label table); later segments win where they overlap."""
    segmentation = segmentation_node.GetSegmentation()
    ids = list(segmentation.GetSegmentIDs())
    names = [segmentation.GetSegment(s).GetName() for s in ids]
    table = complete_table(label_table, names)
    values = {entry["name"]: int(entry["labelValue"]) for entry in table}
    shape = tuple(int(n) for n in volume_node.GetImageData().GetDimensions()[::-1])
    dtype = np.uint8 if max(values.values(), default=0) < 256 else np.uint16
    label = np.zeros(shape, dtype)
    to_seg = scan_to_segmentation(volume_node, segmentation_node)
    for segment_id, name in zip(ids, names):
        label[read_segment(segmentation_node, segment_id, to_seg, full_box(shape)) > 0] = values[name]
    return label, table
