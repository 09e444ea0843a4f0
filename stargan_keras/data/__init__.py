"""Datasets (synthetic shapes, folders of domain folders, the authors' zips) and the tf.data pipelines.

The TFDS builders (`stargan_keras.data.tfds_builders`) are imported only when one of the
authors' datasets is asked for, since importing TFDS takes seconds.
"""

from stargan_keras.data.domain_images import BadFile, DatasetError, DomainImages, ImageSource
from stargan_keras.data.pipeline import (AUTHORS_DATASETS, fixed_val_batch, load_dataset, make_eval_dataset,
                                         make_train_dataset)

__all__ = ["AUTHORS_DATASETS", "BadFile", "DatasetError", "DomainImages", "ImageSource", "fixed_val_batch",
           "load_dataset", "make_eval_dataset", "make_train_dataset"]
