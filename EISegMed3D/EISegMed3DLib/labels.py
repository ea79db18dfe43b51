"""Label maps <-> segments: one segment per label value, names and values from the data folder's label table."""
from __future__ import annotations

import numpy as np

from scipy import ndimage

from .geometry import scan_to_segmentation
from .segment_writer import apply_mask, read_segment, segment_box


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
    """Add one segment per non-zero value of the label map (named from the table); returns the segment IDs.

    Each value is written only inside its own bounding box (one pass of find_objects), on the segmentation's grid.
    """
    names = value_names(label_table)
    to_seg = scan_to_segmentation(volume_node, segmentation_node)
    segmentation = segmentation_node.GetSegmentation()
    ids = []
    label = np.asarray(label_kji)
    if not np.issubdtype(label.dtype, np.integer):
        label = label.astype(np.int32)
    for index, box in enumerate(ndimage.find_objects(label), start=1):
        if box is None:  # value not present
            continue
        segment_id = segmentation.AddEmptySegment("", names.get(index, f"Label {index}"))
        apply_mask(segmentation_node, segment_id, to_seg, box, label[box] == index)
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
    for segment_id, name in zip(ids, names):  # only the box each segment's labelmap covers, in uint8
        box = segment_box(segmentation_node, segment_id, to_seg, shape)
        if all(s.stop > s.start for s in box):
            label[box][read_segment(segmentation_node, segment_id, to_seg, box) > 0] = values[name]
    return label, table
